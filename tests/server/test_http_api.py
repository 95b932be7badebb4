"""The Python API over HTTP (httpx against the shared subprocess server)."""

from __future__ import annotations

import json
import math
import random
import struct
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.server import apps
from tests.server.conftest import RawConn, ServerProcess, start_server

INT_MSG = "Input should be a valid integer, unable to parse string as an integer"


@pytest.fixture(scope="module")
def client(main_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=main_server.base_url, timeout=10, follow_redirects=False) as c:
        yield c


@pytest.fixture(scope="module")
def custom_server() -> Iterator[ServerProcess]:
    with start_server(apps.CUSTOM) as srv:
        yield srv


@pytest.fixture(scope="module")
def custom(custom_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=custom_server.base_url, timeout=10, follow_redirects=False) as c:
        yield c


# ---- basics ----------------------------------------------------------------------------


def test_json_route(client: httpx.Client) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.content == b'{"hello":"world"}'
    assert r.headers["content-length"] == str(len(r.content))
    assert r.headers["server"] == "catzilla"
    assert "date" in r.headers


# ---- path parameters ----------------------------------------------------------------------


def test_int_path_param_converted(client: httpx.Client) -> None:
    r = client.get("/users/42")
    assert r.status_code == 200
    assert r.json() == {"user_id": 42, "q": "x"}
    assert client.get("/users/-7").json()["user_id"] == -7


def test_percent_encoded_path_param_is_decoded_before_conversion(client: httpx.Client) -> None:
    assert client.get("/users/%31%32").json() == {"user_id": 12, "q": "x"}
    assert client.get("/names/a%20b%2Fc").json() == {"name": "a b/c"}


def test_float_path_param(client: httpx.Client) -> None:
    assert client.get("/items/3.25").json() == {"price": 3.25}
    assert client.get("/items/7").json() == {"price": 7.0}
    r = client.get("/items/cheap")
    assert r.status_code == 422
    assert r.json() == {
        "detail": [
            {
                "type": "float_parsing",
                "loc": ["path", "price"],
                "msg": "Input should be a valid number, unable to parse string as a number",
                "input": "cheap",
            }
        ]
    }


def test_uuid_path_param(client: httpx.Client) -> None:
    u = uuid.uuid4()
    assert client.get(f"/uuid/{u}").json() == {"uuid": str(u), "version": 4}
    r = client.get("/uuid/not-a-uuid")
    assert r.status_code == 422
    assert r.json() == {
        "detail": [
            {
                "type": "uuid_parsing",
                "loc": ["path", "ident"],
                "msg": "Input should be a valid UUID, invalid character: found `n` at 0",  # pydantic's
                "input": "not-a-uuid",
                "ctx": {"error": "invalid character: found `n` at 0"},
            }
        ]
    }


@pytest.mark.parametrize(
    ("raw", "value"),
    [("true", True), ("1", True), ("yes", True), ("false", False), ("0", False), ("off", False), ("TRUE", True)],
)
def test_bool_path_param(client: httpx.Client, raw: str, value: bool) -> None:
    r = client.get(f"/flag/{raw}")
    assert r.status_code == 200
    assert r.json() == {"on": value}


def test_bad_bool_path_param_is_422(client: httpx.Client) -> None:
    r = client.get("/flag/maybe")
    assert r.status_code == 422
    (err,) = r.json()["detail"]
    assert err["type"] == "bool_parsing" and err["loc"] == ["path", "on"] and err["input"] == "maybe"
    assert isinstance(err["msg"], str) and err["msg"]


def test_bad_int_path_param_is_422_fastapi_shape(client: httpx.Client) -> None:
    r = client.get("/users/abc")
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"detail": [{"type": "int_parsing", "loc": ["path", "user_id"], "msg": INT_MSG, "input": "abc"}]}


def test_static_route_beats_parameter(client: httpx.Client) -> None:
    assert client.get("/users/me").json() == {"user": "me"}
    assert client.get("/users/7").json() == {"user_id": 7, "q": "x"}
    # /users/me/posts has no static route: the router backtracks to /users/{user_id}/posts
    r = client.get("/users/me/posts")
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["path", "user_id"]
    assert client.get("/users/5/posts").json() == {"posts_of": 5}


def test_catch_all_path(client: httpx.Client) -> None:
    assert client.get("/files/a/b/c.txt").json() == {"rest": "a/b/c.txt"}
    assert client.get("/files/x").json() == {"rest": "x"}
    assert client.get("/files/dir/with%20space").json() == {"rest": "dir/with space"}
    # a catch-all never matches the empty string
    r = client.get("/files/")
    assert r.status_code == 404


# ---- query parameters -------------------------------------------------------------------------


def test_query_params_with_defaults(client: httpx.Client) -> None:
    assert client.get("/search?q=cats").json() == {"q": "cats", "limit": 10, "exact": False}
    assert client.get("/search?q=cats&limit=3&exact=true").json() == {"q": "cats", "limit": 3, "exact": True}
    assert client.get("/search", params={"q": "a b&c"}).json()["q"] == "a b&c"
    assert client.get("/users/1?q=hello").json() == {"user_id": 1, "q": "hello"}


def test_missing_required_query_param_is_422(client: httpx.Client) -> None:
    r = client.get("/search")
    assert r.status_code == 422
    assert r.json() == {"detail": [{"type": "missing", "loc": ["query", "q"], "msg": "Field required", "input": None}]}


def test_all_query_errors_are_reported_together(client: httpx.Client) -> None:
    r = client.get("/search?limit=lots")
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert [e["loc"] for e in detail] == [["query", "q"], ["query", "limit"]]
    assert detail[1] == {"type": "int_parsing", "loc": ["query", "limit"], "msg": INT_MSG, "input": "lots"}


def test_multi_valued_query_params(client: httpx.Client) -> None:
    r = client.get("/tags?tag=a&tag=b&other=1&tag=c%20d&empty=")
    assert r.status_code == 200
    assert r.json() == {"tag": ["a", "b", "c d"], "last": "c d", "keys": ["tag", "other", "empty"], "empty": ""}


# ---- request data ------------------------------------------------------------------------------


def test_headers_case_insensitive_and_multi_valued(client: httpx.Client) -> None:
    r = client.get("/headers", headers=[("x-ToKeN", "secret"), ("X-Multi", "one"), ("x-multi", "two")])
    assert r.status_code == 200
    body = r.json()
    assert body["upper"] == body["lower"] == body["mixed"] == "secret"
    assert body["has"] is True
    assert body["multi"] == ["one", "two"]
    assert body["host"] == client.base_url.netloc.decode()
    assert body["missing"] is None


def test_cookies(client: httpx.Client) -> None:
    r = client.get("/cookies", headers={"Cookie": 'a=1; b=hello%20world; c="quoted"'})
    assert r.json() == {"a": "1", "b": "hello world", "c": "quoted"}
    assert client.get("/cookies").json() == {}


def test_client_host_and_port(main_server: ServerProcess) -> None:
    with RawConn(main_server.port) as c:
        r = c.request("GET", "/client")
        local_host, local_port = c.sock.getsockname()[:2]
    assert r.status == 200
    assert r.json() == {"host": "127.0.0.1", "port": local_port}
    assert local_host == "127.0.0.1"


def test_request_url_path_method(main_server: ServerProcess) -> None:
    with RawConn(main_server.port) as c:
        r = c.request("PATCH", "/info?a=1&b=two%20words", headers={"Host": "example.com:8080"})
    assert r.status == 200
    assert r.json() == {
        "url": "http://example.com:8080/info?a=1&b=two%20words",
        "path": "/info",
        "method": "PATCH",
        "query": "a=1&b=two%20words",
        "http_version": "1.1",
    }


def test_post_echo_body(client: httpx.Client) -> None:
    payload = bytes(range(256)) * 100
    r = client.post("/echo", content=payload, headers={"Content-Type": "application/x-test"})
    assert r.status_code == 200
    assert r.content == payload
    assert r.headers["x-method"] == "POST"
    assert r.headers["x-body-length"] == str(len(payload))
    assert r.headers["content-type"] == "application/x-test"
    r = client.put("/echo", content=b"")
    assert r.status_code == 200 and r.content == b"" and r.headers["x-body-length"] == "0"


def test_request_json(client: httpx.Client) -> None:
    data = {"name": "Zilla", "tags": ["a", "b"], "n": 1.5, "u": "\u00fc\u6f22"}
    r = client.post("/json", json=data)
    assert r.status_code == 200
    assert r.json() == {"received": data}


def test_floats_are_written_as_python_writes_them(client: httpx.Client) -> None:
    # The C writer spells short decimals itself and leaves the rest to repr(); both must be json.dumps'.
    rnd = random.Random(3)
    floats = [
        0.0,
        -0.0,
        1e-4,
        9.999999999999999e-05,
        1e-5,
        2.5e-06,
        0.00012,
        1e-7,
        0.1 + 0.2,
        1e15,
        999999999999999.9,
        1e16,
        5e-324,
        123456.789012345,
        100.0,
        -9.5,
        19.99,
        1.7976931348623157e308,
    ]
    floats += [round(rnd.uniform(-1e6, 1e6), rnd.randint(0, 9)) for _ in range(600)]
    floats += [rnd.uniform(-10, 10) * 10.0 ** rnd.randint(-9, 18) for _ in range(600)]
    floats += [struct.unpack("d", struct.pack("Q", rnd.getrandbits(64)))[0] for _ in range(600)]
    floats = [f for f in floats if math.isfinite(f)]
    r = client.post("/json", content=json.dumps(floats))
    assert r.content == json.dumps({"received": floats}, separators=(",", ":")).encode()


def test_ints_and_strings_are_written_as_json_writes_them(client: httpx.Client) -> None:
    ints = [0, 7, -1, 10, -10, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 2**64, 10**30, -(10**30)]
    strings = [
        "",
        "plain",
        '"',
        "\\",
        '""',
        '"start',
        'end"',
        'mid"dle',
        "a\nb\tc",
        "\x00\x1f\x7f",
        "\b\f\r",
        "é 😀 中",
        "\u2028",
        "</script>",
        "x" * 3000 + '"' + "y" * 3000,
    ]
    data = {"ints": ints, "strings": strings, **{k: len(k) for k in strings[:5]}}  # keys are escaped too
    r = client.post("/json", content=json.dumps(data))
    assert r.content == json.dumps({"received": data}, separators=(",", ":"), ensure_ascii=False).encode()


def test_request_text_uses_charset(client: httpx.Client) -> None:
    r = client.post(
        "/text", content="caf\u00e9".encode("latin-1"), headers={"Content-Type": "text/plain; charset=latin-1"}
    )
    assert r.status_code == 200
    assert r.json() == "caf\u00e9"  # a returned str is a JSON string, as in FastAPI
    r = client.post("/text", content="caf\u00e9".encode())
    assert r.json() == "caf\u00e9"


def test_invalid_json_body_goes_to_the_value_error_handler(client: httpx.Client) -> None:
    # json.JSONDecodeError is a ValueError: the app's ValueError handler answers.
    r = client.post("/json", content=b"{not json")
    assert r.status_code == 418
    assert r.json()["handled"] == "JSONDecodeError"


# ---- return types ---------------------------------------------------------------------------------


def test_return_dict(client: httpx.Client) -> None:
    r = client.get("/ret/dict")
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"a": 1, "nested": {"b": [1, 2, None]}, "text": "h\u00e9llo"}
    assert "h\u00e9llo".encode() in r.content  # UTF-8, not \u escapes


def test_return_list(client: httpx.Client) -> None:
    r = client.get("/ret/list")
    assert r.headers["content-type"] == "application/json"
    assert r.json() == [1, "two", {"three": 3}]


def test_return_str(client: httpx.Client) -> None:
    r = client.get("/ret/str")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"  # a JSON string, as in FastAPI
    assert r.content == '"h\u00e9llo w\u00f6rld"'.encode()
    assert r.headers["content-length"] == str(len('"h\u00e9llo w\u00f6rld"'.encode()))


def test_return_bytes(client: httpx.Client) -> None:
    r = client.get("/ret/bytes")
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.content == b"\x00\x01binary\xff"


def test_return_none_is_json_null(client: httpx.Client) -> None:
    r = client.get("/ret/none")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.content == b"null"


def test_return_int_and_tuple_are_json(client: httpx.Client) -> None:
    assert client.get("/ret/int").content == b"42"
    assert client.get("/ret/tuple").json() == [1, 2]


def test_return_response_with_status_headers_media_type(client: httpx.Client) -> None:
    r = client.get("/ret/response")
    assert r.status_code == 201
    assert r.headers["x-custom"] == "yes"
    assert r.headers["content-type"] == "text/csv; charset=utf-8"  # as Starlette: text/* get a charset
    assert r.content == b"a,b\n1,2\n"


def test_return_json_response(client: httpx.Client) -> None:
    r = client.get("/ret/json")
    assert r.status_code == 202
    assert r.headers["x-json"] == "1"
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"created": True}


def test_return_html_and_plain_text_responses(client: httpx.Client) -> None:
    r = client.get("/ret/html")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.text == "<h1>Hi</h1>"
    r = client.get("/ret/plain")
    assert r.status_code == 203
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.text == "plain text"


def test_set_cookie(client: httpx.Client) -> None:
    r = client.get("/ret/cookie")
    cookies = r.headers.get_list("set-cookie")
    assert len(cookies) == 2
    assert cookies[0] == "session=abc%20123; Max-Age=60; Path=/; HttpOnly; SameSite=lax"
    assert cookies[1] == "theme=dark; Path=/; Secure; SameSite=strict"
    assert r.cookies["session"] == "abc%20123"


def test_response_204_has_no_body_or_length(main_server: ServerProcess) -> None:
    with RawConn(main_server.port) as c:
        r = c.request("DELETE", "/things/3")
        assert r.status == 204
        assert r.header("content-length") is None
        # nothing was sent after the head: the next response follows directly
        r2 = c.request("GET", "/")
        assert r2.status == 200 and r2.json() == {"hello": "world"}


def test_unsupported_return_type_is_500(client: httpx.Client) -> None:
    r = client.get("/ret/set")
    assert r.status_code == 500
    assert r.json() == {"detail": "Internal Server Error"}  # the type is named in the log only


@pytest.mark.parametrize("path", ["/ret/crlf", "/ret/lf", "/ret/badname"])
def test_header_injection_becomes_500(main_server: ServerProcess, path: str) -> None:
    with RawConn(main_server.port) as c:
        c.send(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
        assert r.status == 500
        assert b"Injected" not in r.raw_head
        assert r.json() == {"detail": "Internal Server Error"}
        # the connection is still usable, and nothing stray was sent
        c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        r2 = c.read_response()
        assert r2.status == 200 and r2.json() == {"hello": "world"}
        assert c.buf == b""


# ---- routing errors ------------------------------------------------------------------------------------


def test_unknown_path_is_404(client: httpx.Client) -> None:
    r = client.get("/no/such/thing")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/json"
    assert r.content == b'{"detail":"Not Found"}'


def test_wrong_method_is_405_with_allow(client: httpx.Client) -> None:
    r = client.post("/only-get")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, HEAD, OPTIONS"
    assert r.json() == {"detail": "Method Not Allowed"}
    r = client.delete("/echo")
    assert r.status_code == 405
    assert r.headers["allow"] == "POST, PUT, PATCH, OPTIONS"


def test_options_default_is_204_with_allow(client: httpx.Client) -> None:
    r = client.options("/only-get")
    assert r.status_code == 204
    assert r.headers["allow"] == "GET, HEAD, OPTIONS"
    assert r.content == b""
    r = client.options("/users/3")
    assert r.status_code == 204 and r.headers["allow"] == "GET, HEAD, OPTIONS"
    assert client.options("/nope").status_code == 404


def test_trailing_slash_redirect_307(client: httpx.Client) -> None:
    r = client.get("/users/")
    assert r.status_code == 307
    assert r.headers["location"] == "/users"
    r = client.get("/only-get/?a=1&b=2")
    assert r.status_code == 307
    assert r.headers["location"] == "/only-get?a=1&b=2"
    r = client.post("/echo/", content=b"x")  # 307 keeps the method
    assert r.status_code == 307 and r.headers["location"] == "/echo"
    followed = client.get("/users/", follow_redirects=True)
    assert followed.status_code == 200 and followed.json() == ["alice", "bob"]


# ---- errors and exception handlers -------------------------------------------------------------------------


def test_handler_exception_is_a_safe_500_logged_and_server_keeps_serving(main_server: ServerProcess) -> None:
    with RawConn(main_server.port) as c:
        r = c.request("GET", "/error")
        assert r.status == 500
        assert r.json() == {"detail": "Internal Server Error"}
        wire = r.raw_head + r.body
        assert b"kaboom" not in wire and b"Traceback" not in wire and b".py" not in wire
        r2 = c.request("GET", "/")  # same connection
        assert r2.status == 200 and r2.json() == {"hello": "world"}
    with RawConn(main_server.port) as c:  # and a new one
        assert c.request("GET", "/sync-quick").json() == {"sync": True}
    # the traceback is logged (catzilla.error; logging's last-resort handler writes stderr)
    main_server.wait_for("Exception in handler", timeout=5)
    main_server.wait_for(r'raise RuntimeError\("kaboom"\)', timeout=5)
    main_server.wait_for("RuntimeError: kaboom", timeout=5)


def test_async_handler_exception_is_500(client: httpx.Client) -> None:
    r = client.get("/async-error")
    assert r.status_code == 500
    assert r.json() == {"detail": "Internal Server Error"}
    assert client.get("/async-json").json() == {"async": True, "path": "/async-json"}


def test_http_exception(client: httpx.Client) -> None:
    r = client.get("/http-error")
    assert r.status_code == 403
    assert r.json() == {"detail": "forbidden thing"}
    assert r.headers["x-reason"] == "policy"
    r = client.get("/async-http-error")
    assert r.status_code == 409 and r.json() == {"detail": "Conflict"}


def test_exception_handler_for_class_catches_subclasses(client: httpx.Client) -> None:
    r = client.get("/teapot")
    assert r.status_code == 418
    assert r.json() == {"handled": "TeapotError", "message": "short and stout", "path": "/teapot"}


def test_exception_handler_for_404(custom: httpx.Client) -> None:
    r = custom.get("/missing/page")
    assert r.status_code == 404
    assert r.json() == {"error": "nothing here", "path": "/missing/page"}
    assert custom.get("/ok").json() == {"ok": True}


def test_404_handler_does_not_change_405_or_explicit_slash_routes(custom: httpx.Client) -> None:
    r = custom.post("/ok")
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD, OPTIONS"
    assert custom.get("/ok/").json() == {"ok": "slash"}


def test_http_exception_status_not_affected_by_404_handler(custom: httpx.Client) -> None:
    r = custom.get("/forbidden")
    assert r.status_code == 403 and r.json() == {"detail": "Forbidden"}


def test_production_hides_traceback(custom: httpx.Client) -> None:
    r = custom.get("/boom")
    assert r.status_code == 500
    assert r.json() == {"detail": "Internal Server Error"}
    assert b"secret detail" not in r.content and b"Traceback" not in r.content
    assert custom.get("/ok").status_code == 200


def test_production_unsupported_type_is_500_without_details(custom: httpx.Client) -> None:
    r = custom.get("/weird")
    assert r.status_code == 500
    assert r.json() == {"detail": "Internal Server Error"}


def test_production_banner(custom_server: ServerProcess) -> None:
    assert f"serving http://127.0.0.1:{custom_server.port} (1 worker, allocator " in custom_server.stderr
    assert "debug" not in custom_server.stderr


DEBUG_APP = """
from catzilla import Catzilla

app = Catzilla(debug=True)


@app.get("/boom")
def boom():
    raise RuntimeError("shown in debug")
"""


def test_debug_is_announced_and_shows_tracebacks(main_server: ServerProcess) -> None:
    assert "debug" not in main_server.stderr.split("press Ctrl+C")[0]
    with start_server(DEBUG_APP) as srv, httpx.Client(base_url=f"http://127.0.0.1:{srv.port}") as c:
        assert "debug     ON: 500 answers show exceptions and tracebacks (not for deployment)" in srv.stderr
        body = c.get("/boom").json()
        assert body["error"] == "RuntimeError: shown in debug"
        assert 'raise RuntimeError("shown in debug")' in "".join(body["traceback"])


def test_exception_handler_that_fails_gives_500(custom: httpx.Client) -> None:
    r = custom.get("/broken")
    assert r.status_code == 500
    assert r.json() == {"detail": "Internal Server Error"}
    assert custom.get("/ok").status_code == 200


@pytest.mark.parametrize("path", ["/async-handled", "/async-handled-async"])
def test_async_exception_handler(custom: httpx.Client, path: str) -> None:
    r = custom.get(path)
    assert r.status_code == 409
    assert r.json()["async_handler"] in ("via coroutine", "from async")


def test_response_with_many_headers(client: httpx.Client) -> None:
    r = client.get("/many-headers")
    assert r.status_code == 200 and r.text == "ok"
    for i in range(40):
        assert r.headers[f"x-h{i}"] == str(i)


def test_long_and_non_ascii_request_headers(main_server: ServerProcess) -> None:
    long_name = "X-" + "Long" * 80  # 322 bytes
    with RawConn(main_server.port) as c:
        c.send(f"GET /header-names HTTP/1.1\r\nHost: x\r\n{long_name}: 1\r\nX-Latin: caf\xe9\r\n\r\n".encode("latin-1"))
        r = c.read_response()
    assert r.status == 200
    assert r.json() == ["host", long_name.lower(), "x-latin"]


def test_utf8_path_params(client: httpx.Client) -> None:
    assert client.get("/names/caf%C3%A9").json() == {"name": "caf\u00e9"}
    assert client.get("/names/\u6f22\u5b57").json() == {"name": "\u6f22\u5b57"}  # httpx percent-encodes


def test_query_plus_is_space(client: httpx.Client) -> None:
    assert client.get("/search?q=a+b%2Bc").json()["q"] == "a b+c"
