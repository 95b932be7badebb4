"""WebSockets over real sockets, with the ``websockets`` client: the handshake
(101, 400, 426, 403 refusals), messages both ways, compression, subprotocols,
ping/pong, the close handshake and its codes, protocol errors (1007, 1009),
a vanished peer, backpressure both ways, broadcast, RouterGroup routes, and the
TestClient's ``websocket_connect``."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from catzilla import (
    Catzilla,
    Depends,
    HTTPException,
    Query,
    RouterGroup,
    WebSocket,
    WebSocketDisconnect,
    WebSocketException,
)
from catzilla.testing import TestClient
from catzilla.websockets import broadcast
from tests.server.conftest import HOST, serve_in_thread

websockets = pytest.importorskip("websockets")
from websockets.exceptions import ConnectionClosed, InvalidStatus  # noqa: E402
from websockets.sync.client import connect  # noqa: E402


class Seen:
    def __init__(self) -> None:
        self.events: list[object] = []
        self.lock = threading.Lock()

    def add(self, e: object) -> None:
        with self.lock:
            self.events.append(e)

    def wait(self, pred, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if pred(self.events):
                    return True
            time.sleep(0.01)
        return False


def raw_websocket(host: str, port: int, path: str) -> tuple[socket.socket, bytes]:
    """A handshake written by hand (for frames the client library will not send):
    the socket, and what came after the 101's head."""
    s = socket.create_connection((host, port), timeout=5)
    s.sendall(
        f"GET {path} HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n".encode()
        + b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(4096)
    assert head.startswith(b"HTTP/1.1 101 ") and b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head, head
    return s, head.split(b"\r\n\r\n", 1)[1]


def close_code(s: socket.socket, got: bytes) -> int:
    """The code of the close frame the server sends next (`got`: bytes already read)."""
    while len(got) < 4:
        got += s.recv(4096)
    assert got[0] == 0x88, got[:16]
    return int.from_bytes(got[2:4], "big")


def build(seen: Seen) -> Catzilla:
    app = Catzilla(ws_max_size=1 << 20)
    clients: set[WebSocket] = set()

    async def user(token: str | None = Query(None)) -> str:
        if token != "good":
            raise WebSocketException(1008, "bad token")
        return "alice"

    @app.websocket("/echo")
    async def echo(websocket: WebSocket) -> None:
        offered = websocket.subprotocols
        await websocket.accept(subprotocol="v2" if "v2" in offered else None, headers=[(b"x-extra", b"1")])
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                seen.add(("disconnect", message["code"], message["reason"]))
                return
            if message.get("text") is not None:
                await websocket.send_text(message["text"])
            else:
                await websocket.send_bytes(message["bytes"])

    @app.websocket("/rooms/{room}")
    async def rooms(websocket: WebSocket, room: str, who: str = Depends(user), n: int = Query(1)) -> None:
        await websocket.accept()
        await websocket.send_json({"room": room, "who": who, "n": n, "path": websocket.url.path})
        await websocket.close(4000, "done")

    @app.websocket("/http-error")
    async def http_error(websocket: WebSocket) -> None:
        raise HTTPException(401, "who are you")

    @app.websocket("/silent")
    async def silent(websocket: WebSocket) -> None:
        return None  # never accepts: 403

    @app.websocket("/boom")
    async def boom(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.receive_text()
        raise RuntimeError("handler failure")

    @app.websocket("/wait")
    async def wait(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            await websocket.receive_text()
        except WebSocketDisconnect as e:
            seen.add(("gone", e.code))

    @app.websocket("/flood")
    async def flood(websocket: WebSocket) -> None:
        await websocket.accept()
        sent = 0
        try:
            while sent < 200 << 20:
                await websocket.send_bytes(b"f" * 65536)
                sent += 65536
                seen.add(("sent", sent))
        except WebSocketDisconnect:
            seen.add(("flood-gone", sent))

    @app.websocket("/lazy")
    async def lazy(websocket: WebSocket) -> None:
        await websocket.accept()
        await asyncio.sleep(1.5)  # reads nothing meanwhile
        total = 0
        async for chunk in websocket.iter_bytes():
            total += len(chunk)
            if total >= 64 << 20:
                break
        await websocket.send_json({"total": total})

    @app.websocket("/chat")
    async def chat(websocket: WebSocket) -> None:
        await websocket.accept()
        clients.add(websocket)
        try:
            async for text in websocket.iter_text():
                n = await broadcast(clients, {"said": text})
                seen.add(("broadcast", n))
        finally:
            clients.discard(websocket)

    group = RouterGroup(prefix="/g")

    @group.websocket("/ws")
    async def grouped(websocket: WebSocket, q: str = "none") -> None:
        await websocket.accept()
        await websocket.send_text(f"group {q}")

    app.include_routes(group)
    return app


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Seen, Catzilla]]:
    seen = Seen()
    app = build(seen)
    with serve_in_thread(app) as srv:
        yield f"ws://{HOST}:{srv.port}", seen, app


def test_messages_both_ways_with_compression_and_subprotocol(server: tuple[str, Seen, Catzilla]) -> None:
    url, _, _ = server
    with connect(url + "/echo", subprotocols=["v1", "v2"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "v2"
        assert ws.response.headers["x-extra"] == "1"
        assert [type(e).__name__ for e in ws.protocol.extensions] == ["PerMessageDeflate"]
        ws.send("héllo")
        assert ws.recv(timeout=5) == "héllo"
        ws.send(b"\x00\xff" * 100_000)
        assert ws.recv(timeout=5) == b"\x00\xff" * 100_000
        ws.send(["frag", "mented"])  # one message in two frames
        assert ws.recv(timeout=5) == "fragmented"
        assert ws.ping(b"p").wait(5)  # answered by the C core
    with connect(url + "/echo", compression=None) as ws:
        assert ws.protocol.extensions == []
        ws.send("plain")
        assert ws.recv(timeout=5) == "plain"


def test_compression_with_small_windows(server: tuple[str, Seen, Catzilla]) -> None:
    """server_max_window_bits=8 is accepted (zlib deflates with 9, reaching at
    most 250 bytes back) and client_max_window_bits=9 is read whatever the
    splits: repeats near and far, message after message."""
    from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

    url, _, _ = server
    offer = ClientPerMessageDeflateFactory(server_max_window_bits=8, client_max_window_bits=9)
    with connect(url + "/echo", compression=None, extensions=[offer]) as ws:
        assert [type(e).__name__ for e in ws.protocol.extensions] == ["PerMessageDeflate"]
        answer = ws.response.headers["sec-websocket-extensions"]
        assert "server_max_window_bits=8" in answer and "client_max_window_bits=9" in answer
        block = bytes(range(256)) * 3
        for k in range(5):
            message = block[k:] + block[: 300 + k] + b"tail" * 100
            ws.send(message)
            assert ws.recv(timeout=5) == message
            ws.send(message.decode("latin-1"))
            assert ws.recv(timeout=5) == message.decode("latin-1")


def test_the_close_handshake_and_its_codes(server: tuple[str, Seen, Catzilla]) -> None:
    url, seen, _ = server
    with connect(url + "/echo") as ws:
        ws.close(4321, "client says bye")
    assert seen.wait(lambda ev: ("disconnect", 4321, "client says bye") in ev)
    with connect(url + "/rooms/blue?token=good&n=3") as ws:
        assert json.loads(ws.recv(timeout=5)) == {"room": "blue", "who": "alice", "n": 3, "path": "/rooms/blue"}
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4000, "done")


def test_refusals_before_accept(server: tuple[str, Seen, Catzilla]) -> None:
    url, _, _ = server
    for path, status in [("/rooms/x?token=bad", 403), ("/rooms/x?token=good&n=zz", 403), ("/http-error", 401)]:
        with pytest.raises(InvalidStatus) as refused:
            connect(url + path)
        assert refused.value.response.status_code == status, path
    with pytest.raises(InvalidStatus) as refused:
        connect(url + "/silent")
    assert refused.value.response.status_code == 403
    body = json.loads(refused.value.response.body or b"{}")
    assert body["code"] == 1000
    # not a handshake: 426 with the headers that say how; a broken one: 400
    http = url.replace("ws://", "http://")
    r = httpx.get(http + "/echo")
    assert r.status_code == 426 and r.headers["upgrade"] == "websocket" and r.headers["sec-websocket-version"] == "13"
    r = httpx.get(
        http + "/echo",
        headers={
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "x",
        },
    )
    assert r.status_code == 400 and "Sec-WebSocket-Key" in r.json()["detail"]


def test_a_handler_that_raises_closes_with_1011(server: tuple[str, Seen, Catzilla]) -> None:
    url, _, _ = server
    with connect(url + "/boom") as ws:
        ws.send("go")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011


def test_protocol_errors_close_with_their_code(server: tuple[str, Seen, Catzilla]) -> None:
    url, _, _ = server
    host, port = url.removeprefix("ws://").split(":")
    # a frame over ws_max_size: refused (1009) from its header, before its payload is read
    s, rest = raw_websocket(host, int(port), "/echo")
    s.sendall(bytes([0x82, 0xFF]) + ((1 << 20) + 1).to_bytes(8, "big") + b"\0\0\0\0")
    assert close_code(s, rest) == 1009
    s.close()
    # invalid UTF-8 in a text frame (the client library refuses to send one)
    s, rest = raw_websocket(host, int(port), "/echo")
    s.sendall(bytes([0x81, 0x82, 1, 2, 3, 4]) + bytes(b ^ k for b, k in zip(b"\xc3\x28", b"\x01\x02", strict=True)))
    assert close_code(s, rest) == 1007
    s.close()


def test_a_vanished_peer_raises_websocketdisconnect(server: tuple[str, Seen, Catzilla]) -> None:
    url, seen, _ = server
    host, port = url.removeprefix("ws://").split(":")
    s, _ = raw_websocket(host, int(port), "/wait")
    s.close()  # no close frame
    assert seen.wait(lambda ev: ("gone", 1006) in ev)


def test_send_waits_for_a_client_that_does_not_read(server: tuple[str, Seen, Catzilla]) -> None:
    url, seen, app = server
    before = app.get_server_stats()["output_held"]
    with connect(url + "/flood", compression=None, max_size=None, close_timeout=0.5) as ws:
        time.sleep(1.0)  # the client reads nothing
        sent = max((e[1] for e in seen.events if isinstance(e, tuple) and e[0] == "sent"), default=0)
        assert 0 < sent < 32 << 20, sent  # socket buffers and the bound, not 200 MiB
        held = app.get_server_stats()["output_held"] - before
        assert held < 8 << 20, held
        assert len(ws.recv(timeout=5)) == 65536  # and it goes on when the client reads
    assert seen.wait(lambda ev: any(isinstance(e, tuple) and e[0] == "flood-gone" for e in ev))


def test_a_handler_that_does_not_read_stalls_the_client(server: tuple[str, Seen, Catzilla]) -> None:
    url, _, _ = server
    host, port = url.removeprefix("ws://").split(":")
    s, _ = raw_websocket(host, int(port), "/lazy")
    frame = bytes([0x82, 0xFF]) + (65536).to_bytes(8, "big") + b"\0\0\0\0" + b"z" * 65536  # mask 0
    stream = memoryview(frame * 1024)  # 64 MiB of payload, sent as one byte stream
    s.setblocking(False)
    sent, deadline = 0, time.monotonic() + 1.0
    while time.monotonic() < deadline:
        try:
            sent += s.send(stream[sent : sent + 262144])
        except BlockingIOError:
            time.sleep(0.01)
    assert sent < 40 << 20, sent  # the server stopped reading: not everything went in
    s.setblocking(True)
    s.settimeout(10)
    s.sendall(stream[sent:])
    data = b""
    while b"}" not in data:
        data += s.recv(4096)
    assert json.loads(data[data.index(b"{") : data.index(b"}") + 1])["total"] == 64 << 20
    s.close()


def test_broadcast_reaches_every_client(server: tuple[str, Seen, Catzilla]) -> None:
    url, seen, _ = server
    conns = [connect(url + "/chat") for _ in range(5)]
    try:
        time.sleep(0.2)
        conns[0].send("hi all")
        for c in conns:
            assert json.loads(c.recv(timeout=5)) == {"said": "hi all"}
        assert seen.wait(lambda ev: ("broadcast", 5) in ev)
    finally:
        for c in conns:
            c.close()


def test_routergroup_and_testclient() -> None:
    seen = Seen()
    app = build(seen)
    with TestClient(app) as client:
        with client.websocket_connect("/g/ws?q=yes") as ws:
            assert ws.receive_text() == "group yes"
        with client.websocket_connect("/echo") as ws:
            ws.send_json({"a": 1})
            assert ws.receive_json() == {"a": 1}
            ws.send_bytes(b"raw")
            assert ws.receive_bytes() == b"raw"
        with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect("/rooms/x?token=bad"):
            pass
        assert refused.value.code == 1008
        with client.websocket_connect("/rooms/r?token=good") as ws:
            assert ws.receive_json()["room"] == "r"
            with pytest.raises(WebSocketDisconnect) as ended:
                ws.receive_text()
            assert ended.value.code == 4000


def test_keepalive_pings_close_a_dead_peer_and_keep_a_live_one() -> None:
    seen = Seen()
    app = Catzilla(ws_ping_interval=0.2, ws_ping_timeout=0.3)

    @app.websocket("/ka")
    async def ka(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                seen.add(("said", await websocket.receive_text()))
        except WebSocketDisconnect as e:
            seen.add(("ka", e.code, e.reason))

    with serve_in_thread(app) as srv:
        # a live client answers the pings (the library does): still open after several intervals
        with connect(f"ws://{HOST}:{srv.port}/ka") as ws:
            time.sleep(1.2)
            ws.send("still here")
            assert seen.wait(lambda ev: ("said", "still here") in ev)
        assert seen.wait(lambda ev: ("ka", 1000, "") in ev)
        # a dead one (never reads, never answers): a ping, then close 1011 after the timeout
        s, frames = raw_websocket(HOST, srv.port, "/ka")
        t0 = time.monotonic()
        assert seen.wait(lambda ev: ("ka", 1011, "keepalive ping timeout") in ev)
        assert 0.4 < time.monotonic() - t0 < 3.0
        while more := s.recv(4096):
            frames += more
        assert frames[:2] == b"\x89\x00"  # the ping
        assert frames[2] == 0x88 and int.from_bytes(frames[4:6], "big") == 1011  # then the close
        s.close()


def test_a_stop_says_going_away_to_every_websocket() -> None:
    seen = Seen()
    app = Catzilla()

    @app.websocket("/stay")
    async def stay(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                await websocket.receive_text()
        except WebSocketDisconnect as e:
            seen.add(("stay", e.code))

    with serve_in_thread(app) as srv:
        conns = [connect(f"ws://{HOST}:{srv.port}/stay", max_queue=None) for _ in range(3)]
        time.sleep(0.2)
        stopper = threading.Thread(target=app.stop)
        stopper.start()
        codes = []
        for ws in conns:
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=5)
            codes.append(closed.value.rcvd.code if closed.value.rcvd else None)
        stopper.join(10)
        assert codes == [1001, 1001, 1001]
        assert seen.wait(lambda ev: ev.count(("stay", 1001)) == 3)


def test_middleware_sees_the_handshake_and_cors_gzip_do_not_break_it() -> None:
    from catzilla.middleware.cors import CORSMiddleware
    from catzilla.middleware.gzip import GZipMiddleware
    from catzilla.response import JSONResponse

    app = Catzilla()
    app.add_middleware(CORSMiddleware, allow_origins=["*"])
    app.add_middleware(GZipMiddleware, minimum_size=1)
    seen: list[str] = []

    @app.middleware("http")
    async def auth(request, call_next):  # type: ignore[no-untyped-def]
        seen.append(request.url.path)
        if request.headers.get("authorization") != "Bearer ok":
            return JSONResponse({"detail": "Not authenticated"}, status_code=401)
        return await call_next(request)

    @app.websocket("/secure")
    async def secure(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())

    with serve_in_thread(app) as srv:
        url = f"ws://{HOST}:{srv.port}/secure"
        with pytest.raises(InvalidStatus) as refused:
            connect(url)
        assert refused.value.response.status_code == 401
        with connect(
            url, additional_headers={"Authorization": "Bearer ok", "Origin": "http://x", "Accept-Encoding": "gzip"}
        ) as ws:
            ws.send("through")
            assert ws.recv(timeout=5) == "through"
        assert seen == ["/secure", "/secure"]


def test_broadcast_keeps_order_with_sends_and_skips_the_gone() -> None:
    """One hand-over for all targets: each gets the message once, after what its
    handler sent before (in order), compressed or not per connection; a closed
    connection is skipped and not counted."""
    app = Catzilla()
    clients: list[WebSocket] = []

    @app.websocket("/room")
    async def room(websocket: WebSocket) -> None:
        await websocket.accept()
        clients.append(websocket)
        try:
            async for text in websocket.iter_text():
                await websocket.send_text("ack " + text)
                n = await broadcast(list(clients), text.encode() if text.startswith("b") else text)
                await websocket.send_text(f"count {n}")
        finally:
            clients.remove(websocket)

    with serve_in_thread(app) as srv:
        url = f"ws://{HOST}:{srv.port}/room"
        conns = [connect(url, compression=None if i % 2 else "deflate") for i in range(20)]
        try:
            deadline = time.monotonic() + 5
            while len(clients) < 20 and time.monotonic() < deadline:
                time.sleep(0.01)
            conns.pop().close()
            while len(clients) > 19 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(clients) == 19
            said = ["m0", "b1", "m2"]
            for text in said:
                conns[0].send(text)
                assert conns[0].recv(timeout=5) == "ack " + text
                assert conns[0].recv(timeout=5) == (text.encode() if text.startswith("b") else text)
                assert conns[0].recv(timeout=5) == "count 19"
            for c in conns[1:]:
                got = [c.recv(timeout=5) for _ in said]
                assert got == ["m0", b"b1", "m2"]
        finally:
            for c in conns:
                c.close()
