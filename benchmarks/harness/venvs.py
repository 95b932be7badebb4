"""One virtualenv per server, created on demand from benchmarks/peers/<name>.txt.

Every venv is made from the same base interpreter as the repo's .venv, so all
servers run on the same CPython build.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .paths import PEERS, REPO, VENVS, our_python

STAMP = ".bench-installed"


class VenvError(RuntimeError):
    def __init__(self, name: str, message: str, excerpt: str = "") -> None:
        super().__init__(f"venv {name}: {message}")
        self.excerpt = excerpt


def base_python() -> str:
    """The base interpreter of the repo's .venv (its pyvenv.cfg), else this one's."""
    cfg = REPO / ".venv" / "pyvenv.cfg"
    if cfg.exists():
        for line in cfg.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "executable" and Path(value.strip()).exists():
                return value.strip()
    return getattr(sys, "_base_executable", None) or shutil.which("python3") or sys.executable


def venv_python(name: str) -> Path:
    return VENVS / name / "bin" / "python"


def requirements(name: str) -> Path:
    return PEERS / f"{name}.txt"


def _digest(req: Path) -> str:
    return hashlib.sha256(req.read_bytes() + base_python().encode()).hexdigest()


def is_ready(name: str) -> bool:
    stamp = VENVS / name / STAMP
    req = requirements(name)
    return req.exists() and stamp.exists() and stamp.read_text().strip() == _digest(req) and venv_python(name).exists()


def ensure_venv(name: str, log=print) -> Path:
    """Create (or refresh) benchmarks/.venvs/<name>; VenvError with an excerpt when it fails."""
    req = requirements(name)
    if not req.exists():
        raise VenvError(name, f"no requirements file {req}")
    if is_ready(name):
        return venv_python(name)
    venv = VENVS / name
    logfile = VENVS / f"{name}.log"
    VENVS.mkdir(parents=True, exist_ok=True)
    log(f"[venv] creating {venv} from {req.name} ...")
    steps = [
        [base_python(), "-m", "venv", "--clear", str(venv)],
        [str(venv_python(name)), "-m", "pip", "install", "--disable-pip-version-check", "-q", "-r", str(req)],
    ]
    with open(logfile, "w") as out:
        for cmd in steps:
            out.write("$ " + " ".join(cmd) + "\n")
            out.flush()
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=1800)
            if proc.returncode != 0:
                text = logfile.read_text(errors="replace")
                lines = [ln for ln in text.splitlines() if ln.strip() and "is ignored: it is neither" not in ln]
                raise VenvError(name, f"`{' '.join(cmd[-4:])}` exited {proc.returncode}", "\n".join(lines[-15:]))
    (venv / STAMP).write_text(_digest(req) + "\n")
    return venv_python(name)


def freeze(python: str | os.PathLike) -> list[str]:
    try:
        out = subprocess.run(
            [str(python), "-m", "pip", "freeze", "--disable-pip-version-check", "--all"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        return [ln for ln in out.stdout.splitlines() if ln and not ln.startswith(("pip==", "setuptools=="))]
    except (OSError, subprocess.SubprocessError):
        return []


def dist_version(python: str | os.PathLike, dist: str) -> str | None:
    try:
        out = subprocess.run(
            [str(python), "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def ours_python_ok() -> tuple[bool, str]:
    py = our_python()
    if not Path(py).exists():
        return False, f"{py} not found: run `make setup`"
    out = subprocess.run(
        [py, "-c", "import catzilla, catzilla._core; print(catzilla.__version__)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if out.returncode != 0:
        return False, out.stderr.strip()[-800:]
    return True, out.stdout.strip()
