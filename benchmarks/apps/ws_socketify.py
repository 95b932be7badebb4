"""Socketify (uWebSockets) WebSocket echo (`/`) and broadcast (`/broadcast`).

Broadcast uses uWebSockets' own pub/sub (subscribe to a topic, app.publish),
its documented way to send one message to many. Payload and backpressure
limits are raised from the 16 KiB / 64 KiB defaults so that 16 KiB messages
and a 1,000-way fan-out are not cut.

    python ws_socketify.py PORT
"""

import sys

from socketify import App, CompressOptions

app = App()


def echo_message(ws, message, opcode):
    ws.send(message, opcode)


def fan_open(ws):
    ws.subscribe("all")


def fan_message(ws, message, opcode):
    app.publish("all", message, opcode)


LIMITS = {
    "compression": CompressOptions.DISABLED,  # the benchmark client offers no extension
    "max_payload_length": 32 * 1024 * 1024,
    "max_backpressure": 64 * 1024 * 1024,
    "idle_timeout": 960,
}

app.ws("/", {**LIMITS, "message": echo_message})
app.ws("/broadcast", {**LIMITS, "open": fan_open, "message": fan_message})
app.any("/*", lambda res, req: res.write_status(404).end_without_body())

if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9001
    app.listen({"port": port, "host": "127.0.0.1"}, lambda config: print(f"listening on {port}", flush=True))
    app.run()
