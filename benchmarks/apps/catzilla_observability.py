"""Catzilla (this repo): hello world with the access log, metrics and memory
per route as $BENCH_ACCESS_LOG (off|common|json), $BENCH_METRICS (0|1) and
$BENCH_ROUTE_MEMORY (0|1; unset: as metrics) say.
Port from $BENCH_PORT. The access log goes to stdout (the benchmark sends it to a file)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _payload import HELLO

from catzilla import Catzilla

mode = os.environ.get("BENCH_ACCESS_LOG", "off")
route_memory = os.environ.get("BENCH_ROUTE_MEMORY")
# only when set: a catzilla from before the option runs this app too (--before)
extra = {} if route_memory is None else {"route_memory": route_memory == "1"}
app = Catzilla(
    production=True,
    access_log=mode != "off",
    access_log_format="json" if mode == "json" else "common",
    metrics=os.environ.get("BENCH_METRICS", "0") == "1",
    **extra,
)


@app.get("/")
def hello():
    return HELLO


if __name__ == "__main__":
    app.listen(port=int(os.environ["BENCH_PORT"]), host="127.0.0.1")
