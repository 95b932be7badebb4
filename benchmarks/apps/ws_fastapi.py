"""FastAPI WebSocket echo (`/`) and broadcast (`/broadcast`), as its docs write them."""

import contextlib

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

app = FastAPI()
subscribers: set[WebSocket] = set()


@app.websocket("/")
async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await websocket.send_text(message["text"])
        else:
            await websocket.send_bytes(message["bytes"])


@app.websocket("/broadcast")
async def fan_out(websocket: WebSocket) -> None:
    await websocket.accept()
    subscribers.add(websocket)
    try:
        while True:
            text = await websocket.receive_text()
            for ws in list(subscribers):
                with contextlib.suppress(Exception):  # a peer that has gone
                    await ws.send_text(text)
    except WebSocketDisconnect:
        pass
    finally:
        subscribers.discard(websocket)
