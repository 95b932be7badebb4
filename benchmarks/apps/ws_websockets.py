"""The websockets library's own server (asyncio): an echo on every path,
permessage-deflate offered (its default). The reference server against which
benchmarks/autobahn.py is validated.

    python ws_websockets.py PORT
"""

import asyncio
import sys

from websockets.asyncio.server import serve


async def echo(websocket):
    async for message in websocket:
        await websocket.send(message)


async def main(port):
    async with serve(echo, "127.0.0.1", port, max_size=2**25, ping_interval=None) as server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 9001))
