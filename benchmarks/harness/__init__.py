"""The benchmark harness (standard library only; charts import matplotlib lazily).

from benchmarks.harness import get_spec, start_server, run_wrk, BY_WORKLOAD, verify

with start_server(get_spec("catzilla")) as srv:
    check = verify(srv, BY_WORKLOAD["hello"])
    result = run_wrk(srv.url("/"), duration=1, connections=4)
"""

from .paths import APPS, BENCH, PEERS, REPO, RESULTS, VENVS, our_python
from .servers import SERVERS, Server, ServerError, ServerSpec, get_spec, start_server
from .workloads import BY_NAME as BY_WORKLOAD
from .workloads import WORKLOADS, Workload, verify
from .wrk import WrkResult, parse_wrk, post_script, run_wrk, wrk_available

__all__ = [
    "APPS",
    "BENCH",
    "BY_WORKLOAD",
    "PEERS",
    "REPO",
    "RESULTS",
    "SERVERS",
    "VENVS",
    "WORKLOADS",
    "Server",
    "ServerError",
    "ServerSpec",
    "Workload",
    "WrkResult",
    "get_spec",
    "our_python",
    "parse_wrk",
    "post_script",
    "run_wrk",
    "start_server",
    "verify",
    "wrk_available",
]
