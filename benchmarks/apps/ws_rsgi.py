"""Granian RSGI WebSocket echo (`/`) and broadcast (`/broadcast`), no framework."""

from granian.rsgi import WebsocketMessageType

try:
    from granian._granian import RSGIProtocolClosed
except ImportError:  # another layout: catch any error of a closed transport
    RSGIProtocolClosed = RuntimeError

subscribers = set()


async def app(scope, proto):
    if scope.proto != "ws":
        proto.response_bytes(404, [], b"")
        return
    transport = await proto.accept()
    fan = scope.path == "/broadcast"
    if fan:
        subscribers.add(transport)
    try:
        while True:
            try:
                msg = await transport.receive()
            except RSGIProtocolClosed:
                break
            if msg.kind == WebsocketMessageType.close:
                break
            if fan:
                for peer in list(subscribers):
                    try:
                        if msg.kind == WebsocketMessageType.string:
                            await peer.send_str(msg.data)
                        else:
                            await peer.send_bytes(msg.data)
                    except Exception:
                        pass
            elif msg.kind == WebsocketMessageType.string:
                await transport.send_str(msg.data)
            else:
                await transport.send_bytes(msg.data)
    finally:
        subscribers.discard(transport)
    proto.close()
