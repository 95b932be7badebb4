"""Catzilla WebSocket echo (`/`) and broadcast (`/broadcast`): the app that
benchmarks/autobahn.py and benchmarks/websockets.py start by default.

    python benchmarks/apps/catzilla_ws.py [PORT]

`/broadcast`: every connection is a subscriber; a message received from any
of them is sent to all (the sender too), with catzilla.websockets.broadcast
(one message serialized once) or, where that helper does not exist, a loop of
send_text/send_bytes.
"""

from catzilla import Catzilla, WebSocket

try:
    from catzilla.websockets import broadcast
except ImportError:  # the helper is not there yet: one send per connection
    broadcast = None

app = Catzilla(ws_per_message_deflate=True)  # compression offered to clients that ask (uvicorn's default and name)


@app.websocket("/")
async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        message = await websocket.receive()  # ASGI-style dict, as in Starlette
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await websocket.send_text(message["text"])
        else:
            await websocket.send_bytes(message["bytes"])


subscribers: set[WebSocket] = set()


@app.websocket("/broadcast")
async def fan_out(websocket: WebSocket) -> None:
    await websocket.accept()
    subscribers.add(websocket)
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message["text"] if message.get("text") is not None else message["bytes"]
            if broadcast is not None:
                await broadcast(list(subscribers), data)
            elif isinstance(data, str):
                for ws in list(subscribers):
                    await ws.send_text(data)
            else:
                for ws in list(subscribers):
                    await ws.send_bytes(data)
    finally:
        subscribers.discard(websocket)


if __name__ == "__main__":
    import sys

    app.listen(host="127.0.0.1", port=int(sys.argv[1]) if len(sys.argv) > 1 else 9001)
