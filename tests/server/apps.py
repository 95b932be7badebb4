"""Source of the apps the server tests run in subprocesses.

Each string defines ``app``; tests/server/conftest.py appends ``app.listen(...)``.
"""

MAIN = r"""
import asyncio
import os
import uuid

from catzilla import (Catzilla, HTMLResponse, HTTPException, JSONResponse, PlainTextResponse,
                      Request, Response)

app = Catzilla()  # the defaults: 500 bodies say nothing internal


class TeapotError(ValueError):
    pass


@app.exception_handler(ValueError)
def on_value_error(request, exc):
    return JSONResponse({"handled": type(exc).__name__, "message": str(exc), "path": request.path},
                        status_code=418)


@app.get("/")
def index():
    return {"hello": "world"}


@app.get("/users")
def users():
    return ["alice", "bob"]


@app.get("/users/me")
def users_me():
    return {"user": "me"}


@app.get("/users/{user_id}")
def user(user_id: int, q: str = "x"):
    return {"user_id": user_id, "q": q}


@app.get("/users/{user_id}/posts")
def user_posts(user_id: int):
    return {"posts_of": user_id}


@app.get("/items/{price}")
def item(price: float):
    return {"price": price}


@app.get("/uuid/{ident}")
def by_uuid(ident: uuid.UUID):
    return {"uuid": str(ident), "version": ident.version}


@app.get("/flag/{on}")
def flag(on: bool):
    return {"on": on}


@app.get("/names/{name}")
def name(name: str):
    return {"name": name}


@app.get("/search")
def search(q: str, limit: int = 10, exact: bool = False):
    return {"q": q, "limit": limit, "exact": exact}


@app.get("/tags")
def tags(request: Request):
    qp = request.query_params
    return {"tag": qp.getlist("tag"), "last": qp.get("tag"), "keys": list(qp), "empty": qp.get("empty")}


@app.get("/headers")
def headers(request: Request):
    h = request.headers
    return {
        "upper": h.get("X-TOKEN"),
        "lower": h.get("x-token"),
        "mixed": h["X-Token"],
        "has": "x-TOKEN" in h,
        "multi": h.getlist("X-Multi"),
        "host": h.get("host"),
        "missing": h.get("x-missing"),
    }


@app.get("/cookies")
def cookies(request: Request):
    return request.cookies


@app.get("/client")
def client(request: Request):
    return {"host": request.client.host, "port": request.client.port}


@app.route("/info", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def info(request: Request):
    return {
        "url": str(request.url),
        "path": request.path,
        "method": request.method,
        "query": request.url.query,
        "http_version": request.http_version,
    }


@app.route("/echo", methods=["POST", "PUT", "PATCH"])
def echo(request: Request):
    return Response(
        request.body,
        media_type=request.headers.get("content-type", "application/octet-stream"),
        headers={"X-Method": request.method, "X-Body-Length": str(len(request.body))},
    )


@app.post("/json")
def echo_json(request: Request):
    return {"received": request.json()}


@app.post("/text")
def echo_text(request: Request):
    return request.text()


@app.delete("/things/{thing_id}")
def delete_thing(thing_id: int):
    return Response(status_code=204)


@app.get("/only-get")
def only_get():
    return {"only": "get"}


@app.get("/files/{rest:path}")
def files(rest: str):
    return {"rest": rest}


# -- return types ------------------------------------------------------------------


@app.get("/ret/dict")
def ret_dict():
    return {"a": 1, "nested": {"b": [1, 2, None]}, "text": "h\u00e9llo"}


@app.get("/ret/list")
def ret_list():
    return [1, "two", {"three": 3}]


@app.get("/ret/str")
def ret_str():
    return "h\u00e9llo w\u00f6rld"


@app.get("/ret/bytes")
def ret_bytes():
    return b"\x00\x01binary\xff"


@app.get("/ret/none")
def ret_none():
    return None


@app.get("/ret/int")
def ret_int():
    return 42


@app.get("/ret/tuple")
def ret_tuple():
    return (1, 2)


@app.get("/ret/response")
def ret_response():
    return Response("a,b\n1,2\n", status_code=201, headers={"X-Custom": "yes"}, media_type="text/csv")


@app.get("/ret/json")
def ret_json():
    return JSONResponse({"created": True}, status_code=202, headers={"X-Json": "1"})


@app.get("/ret/html")
def ret_html():
    return HTMLResponse("<h1>Hi</h1>")


@app.get("/ret/plain")
def ret_plain():
    return PlainTextResponse("plain text", status_code=203)


@app.get("/ret/cookie")
def ret_cookie():
    r = JSONResponse({"ok": True})
    r.set_cookie("session", "abc 123", max_age=60, httponly=True)
    r.set_cookie("theme", "dark", samesite="strict", secure=True)
    return r


@app.get("/ret/set")
def ret_set():
    return {1, 2}


@app.get("/ret/crlf")
def ret_crlf():
    return Response("x", headers={"X-Bad": "a\r\nInjected: yes"})


@app.get("/ret/lf")
def ret_lf():
    return Response("x", headers={"X-Bad": "a\nInjected: yes"})


@app.get("/ret/badname")
def ret_badname():
    return Response("x", headers={"Bad Name: x\r\nInjected": "yes"})


@app.get("/ret/framing")
def ret_framing():
    return Response("abc", headers={"Content-Length": "999", "Transfer-Encoding": "chunked", "Connection": "close"})


@app.get("/ret/server-date")
def ret_server_date():
    return Response("x", headers={"Server": "mine", "Date": "Thu, 01 Jan 1970 00:00:00 GMT"})


@app.get("/ret/304")
def ret_304():
    return Response("not sent", status_code=304, headers={"ETag": '"v1"'})


@app.get("/many-headers")
def many_headers():
    return Response("ok", headers={f"X-H{i}": str(i) for i in range(40)})


@app.get("/header-names")
def header_names(request: Request):
    return [name for name, _ in request.headers.multi_items()]


@app.get("/big")
def big():
    return b"0123456789abcdef" * 65536  # 1 MiB


# -- errors -------------------------------------------------------------------------------


@app.get("/error")
def error():
    raise RuntimeError("kaboom")


@app.get("/teapot")
def teapot():
    raise TeapotError("short and stout")


@app.get("/http-error")
def http_error():
    raise HTTPException(403, "forbidden thing", headers={"X-Reason": "policy"})


@app.get("/async-error")
async def async_error():
    await asyncio.sleep(0)
    raise RuntimeError("async kaboom")


@app.get("/async-http-error")
async def async_http_error():
    raise HTTPException(409)


# -- async and sync -------------------------------------------------------------------------


@app.get("/slow")
async def slow(delay: float = 0.5):
    await asyncio.sleep(delay)
    return {"slept": delay}


@app.get("/async-json")
async def async_json(request: Request):
    return {"async": True, "path": request.path}


@app.get("/sync-quick")
def sync_quick():
    return {"sync": True}


@app.get("/pid")
def pid():
    return {"pid": os.getpid()}
"""

# production=True, a 404 handler.
CUSTOM = r"""
from catzilla import Catzilla, HTTPException, JSONResponse

app = Catzilla(production=True)


@app.exception_handler(404)
def not_found(request, exc):
    return JSONResponse({"error": "nothing here", "path": request.path}, status_code=404)


@app.get("/boom")
def boom():
    raise RuntimeError("secret detail")


@app.get("/ok")
def ok():
    return {"ok": True}


@app.get("/ok/")
def ok_slash():
    return {"ok": "slash"}


@app.get("/forbidden")
def forbidden():
    raise HTTPException(403)


@app.get("/weird")
def weird():
    return object()


class Broken(Exception):
    pass


class AsyncHandled(Exception):
    pass


@app.exception_handler(Broken)
def on_broken(request, exc):
    raise RuntimeError("the handler itself fails")


@app.exception_handler(AsyncHandled)
async def on_async_handled(request, exc):
    return JSONResponse({"async_handler": str(exc)}, status_code=409)


@app.get("/broken")
def broken():
    raise Broken("x")


@app.get("/async-handled")
def async_handled():
    raise AsyncHandled("via coroutine")


@app.get("/async-handled-async")
async def async_handled_async():
    raise AsyncHandled("from async")
"""

SMALL = r"""
import asyncio
from catzilla import Catzilla, Request

app = Catzilla()


@app.get("/sleep")
async def sleep(delay: float = 1.2):
    await asyncio.sleep(delay)
    return {"slept": delay}


@app.get("/sync-sleep")
def sync_sleep():
    import time
    time.sleep(1.2)
    return {"slept": "sync"}


@app.get("/")
def index():
    return {"ok": True}


@app.route("/echo", methods=["POST"])
def echo(request: Request):
    return {"length": len(request.body)}


@app.get("/{rest:path}")
def anything(rest: str):
    return {"rest": rest}
"""

SMALL_LIMITS = (
    "max_url_length=200, max_header_size=1024, max_headers=20, max_body_size=1000, "
    "header_timeout=0.5, body_timeout=0.5, keepalive_timeout=0.5"
)
