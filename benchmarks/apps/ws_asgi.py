"""Raw ASGI WebSocket echo (`/`) and broadcast (`/broadcast`), no framework:
for uvicorn (with the websockets library as its protocol) and other ASGI servers.

`/broadcast`: every connection is a subscriber; a message received from any
of them is sent to all (the sender too), one send per connection.
"""

import contextlib

subscribers = {}  # id -> send


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "websocket":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    message = await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    fan = scope["path"] == "/broadcast"
    key = id(send)
    if fan:
        subscribers[key] = send
    try:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            out = (
                {"type": "websocket.send", "text": text}
                if text is not None
                else {"type": "websocket.send", "bytes": message.get("bytes")}
            )
            if fan:
                for peer in list(subscribers.values()):
                    with contextlib.suppress(Exception):  # a peer that has gone
                        await peer(out)
            else:
                await send(out)
    finally:
        subscribers.pop(key, None)
