"""Catzilla (this repo): hello world with the access log and metrics as
$BENCH_ACCESS_LOG (off|common|json) and $BENCH_METRICS (0|1) say.
Port from $BENCH_PORT. The access log goes to stdout (the benchmark sends it to a file)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _payload import HELLO

from catzilla import Catzilla

mode = os.environ.get("BENCH_ACCESS_LOG", "off")
app = Catzilla(
    production=True,
    access_log=mode != "off",
    access_log_format="json" if mode == "json" else "common",
    metrics=os.environ.get("BENCH_METRICS", "0") == "1",
)


@app.get("/")
def hello():
    return HELLO


if __name__ == "__main__":
    app.listen(port=int(os.environ["BENCH_PORT"]), host="127.0.0.1")
