"""What the standard json module alone costs per request, on the server's CPU.

For a server that parses and writes JSON with the standard json module, this
cost per request is a ceiling on its req/s for the JSON-heavy workloads (echo
~10 KB, the 100 KB response), whatever the server does around it. (Robyn uses
serde/orjson; this repo's Catzilla writes plain return values in C but parses
request bodies with json.loads.)
"""

from __future__ import annotations

import json
import shutil
import subprocess

from .paths import APPS
from .workloads import ECHO_10K, ECHO_SMALL

_CODE = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from _payload import HELLO, LARGE
dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode
small, big = sys.argv[2].encode(), sys.argv[3].encode()
cases = {
    "hello: dumps": lambda: dumps(HELLO),
    "echo_small: loads + dumps": lambda: dumps(json.loads(small)),
    "echo_10k: loads + dumps": lambda: dumps(json.loads(big)),
    "large: dumps of the 100 KB document": lambda: dumps(LARGE),
}
out = {}
for name, fn in cases.items():
    n, t = 1, 0.0
    while t < 0.2:
        n *= 2
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        t = time.perf_counter() - t0
    best = t / n
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    out[name] = best * 1e6
print(json.dumps(out))
"""


def json_costs(python: str, cpu: int | None = 0) -> dict | None:
    cmd = [python, "-c", _CODE, str(APPS), ECHO_SMALL.decode(), ECHO_10K.decode()]
    if cpu is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(cpu), *cmd]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        return {k: {"us": v, "ceiling_rps": 1e6 / v} for k, v in json.loads(p.stdout).items()}
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
