"""catzilla==0.2.3 from PyPI — its upload system, for benchmarks/uploads.py.

    python catzilla_023_uploads.py <port>

The same form as the other apps: two fields and a file, answered with the
fields and the file's size. In 0.2.3 a handler takes the request first, form
fields come through `Form(...)` and a file through `File()` (its C multipart
parser; each file is then written to a temporary file, removed when the
`UploadFile` is collected).
"""

import sys

from catzilla import Catzilla, File, Form, JSONResponse, Request, UploadFile

app = Catzilla(production=True, show_banner=False, log_requests=False)


@app.post("/form")
async def form(request: Request, name: str = Form(...), tag: str = Form(...), file: UploadFile = File()):
    return JSONResponse({"name": name, "tag": tag, "size": file.size})


@app.post("/big")
async def big(request: Request, file: UploadFile = File()):
    n = 0
    while True:
        chunk = await file.read(1 << 20)
        if not chunk:
            break
        n += len(chunk)
    return JSONResponse({"size": n})


if __name__ == "__main__":
    app.listen(port=int(sys.argv[1]), host="127.0.0.1")
