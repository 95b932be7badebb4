"""catzilla==0.2.3 from PyPI — its static file server, for benchmarks/streaming.py.

    python catzilla_023_static.py <directory> <port>

0.2.3 serves static directories from C with `app.mount_static(path, dir)`
(libuv file reads, with an in-memory "hot cache" of files it has served:
100 MiB, on by default). Its defaults are used, as a user would get them.
"""

import sys

from catzilla import Catzilla

app = Catzilla(production=True, show_banner=False, log_requests=False)
app.mount_static("/static", sys.argv[1])

if __name__ == "__main__":
    app.listen(port=int(sys.argv[2]), host="127.0.0.1")
