#!/usr/bin/env python3
"""FastAPI compatibility run: FastAPI's own tutorial apps and their tests, ported
to Catzilla by changing imports only, and their OpenAPI documents compared.

    python scripts/compat.py            # everything; writes docs/compat.md
    python scripts/compat.py -k body    # only test modules whose path contains "body"

What it does:

1. Takes FastAPI's sdist (pinned below by version and SHA256) from PyPI into
   build/compat/ (kept there: re-runs are offline) and checks its hash.
2. Makes build/compat/venv (scripts/compat-requirements.txt: the tutorials'
   test dependencies, and FastAPI itself for the reference documents).
3. Copies ``docs_src/`` and ``tests/test_tutorial/`` into build/compat/port/
   and rewrites names only, token by token (never inside strings or
   comments): ``FastAPI`` -> ``Catzilla`` (``FastAPIError`` -> ``CatzillaError``), ``APIRouter`` -> ``RouterGroup``,
   ``include_router`` -> ``include_routes``, and the top-level modules
   ``fastapi`` and ``starlette`` -> ``catzilla`` (so ``fastapi.testclient``
   becomes ``catzilla.testclient``).
4. Runs pytest once per test module (with a timeout), without the tests that
   compare whole OpenAPI documents (``test_openapi*``: their snapshot holds
   FastAPI's default title "FastAPI"); those documents are compared in step 5.
   A test module passes when none of its tests fails or errors (skips, e.g.
   for Python 3.14-only variants, do not count against it); it is one "app".
5. Imports every tutorial module that has an ``app`` twice, once as FastAPI
   wrote it (with FastAPI) and once ported (with Catzilla), and compares
   ``app.openapi()`` (the default title, "FastAPI" against "Catzilla", is
   taken as equal).
6. Writes the pass rate per category (tutorial directory), each failing app
   with the first failure's reason and each OpenAPI difference to
   docs/compat.md, and the raw results to build/compat/results.json.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import tokenize
import xml.etree.ElementTree as ET
from pathlib import Path

FASTAPI_VERSION = "0.165.0"
FASTAPI_SDIST = f"fastapi-{FASTAPI_VERSION}.tar.gz"
FASTAPI_SHA256 = "dd94d4128319c1e1d50535ab023ab698f850a4d2822f0e181747b46f4ff3c0ab"

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "build" / "compat"
VENV = WORK / "venv"
REQUIREMENTS = ROOT / "scripts" / "compat-requirements.txt"
PORT = WORK / "port"
REPORT = ROOT / "docs" / "compat.md"
TIMEOUT = 120  # seconds per test module
TEST_TIMEOUT = 30  # seconds per test

NAMES = {
    "FastAPI": "Catzilla",
    "APIRouter": "RouterGroup",
    "include_router": "include_routes",
    "fastapi": "catzilla",
    "starlette": "catzilla",
}


def say(*args: object) -> None:
    print("compat:", *args, file=sys.stderr, flush=True)


# -- sources and venv ---------------------------------------------------------------


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch_sdist() -> Path:
    WORK.mkdir(parents=True, exist_ok=True)
    sdist = WORK / FASTAPI_SDIST
    if not sdist.exists():
        say(f"downloading {FASTAPI_SDIST}")
        subprocess.run(
            # pip reads the sdist's metadata with its build backend (pdm), fetched in isolation
            [sys.executable, "-m", "pip", "download", "-q", "--no-binary", ":all:", "--no-deps",
             f"fastapi=={FASTAPI_VERSION}", "-d", str(WORK)],
            check=True,
        )  # fmt: skip
    got = sha256(sdist)
    if got != FASTAPI_SHA256:
        sdist.unlink()
        raise SystemExit(f"compat: {FASTAPI_SDIST} has sha256 {got}, expected {FASTAPI_SHA256}")
    return sdist


def extract(sdist: Path) -> Path:
    src = WORK / f"fastapi-{FASTAPI_VERSION}"
    stamp = src / ".extracted"
    if not stamp.exists():
        shutil.rmtree(src, ignore_errors=True)
        with tarfile.open(sdist) as tar:
            tar.extractall(WORK, filter="data")
        stamp.touch()
    return src


def built_catzilla() -> Path:
    """A directory holding only the catzilla package this interpreter imports
    (the built one, with its extension), for the compat venv's path. Another
    build is run by putting it first on this interpreter's path:
    ``PYTHONPATH=build/site python scripts/compat.py`` for a ``pip install --target build/site``."""
    import catzilla

    site = WORK / "catzilla-site"
    site.mkdir(parents=True, exist_ok=True)
    link = site / "catzilla"
    target = Path(catzilla.__file__).parent
    if not link.is_symlink() or link.resolve() != target.resolve():
        link.unlink(missing_ok=True)
        link.symlink_to(target)
    return site


def venv_python() -> Path:
    python = VENV / "bin" / "python"
    stamp = VENV / ".requirements"
    want = REQUIREMENTS.read_text()
    if not python.exists() or not stamp.exists() or stamp.read_text() != want:
        say("making", VENV)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)], check=True)
        stamp.write_text(want)
    return python


# -- the port ------------------------------------------------------------------------


def port_source(text: str) -> str:
    """``text`` with the names of NAMES replaced, in code only."""
    edits: dict[int, list[tuple[int, int, str]]] = {}
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type != tokenize.NAME:
            continue
        new = NAMES.get(tok.string)
        if new is None and tok.string.startswith("FastAPI"):  # FastAPIError -> CatzillaError
            new = "Catzilla" + tok.string.removeprefix("FastAPI")
        if new is not None:
            (row, col), (_, end) = tok.start, tok.end
            edits.setdefault(row, []).append((col, end, new))
    lines = text.splitlines(keepends=True)
    for row, cuts in edits.items():
        line = lines[row - 1]
        for col, end, new in sorted(cuts, reverse=True):
            line = line[:col] + new + line[end:]
        lines[row - 1] = line
    return "".join(lines)


def make_port(src: Path) -> None:
    shutil.rmtree(PORT, ignore_errors=True)
    (PORT / "tests").mkdir(parents=True)
    shutil.copytree(src / "docs_src", PORT / "docs_src")
    shutil.copytree(src / "tests" / "test_tutorial", PORT / "tests" / "test_tutorial")
    for name in ("__init__.py", "utils.py"):
        shutil.copy(src / "tests" / name, PORT / "tests" / name)
    # the opentelemetry tests' conftest imports this one
    shutil.copytree(src / "tests" / "test_telemetry", PORT / "tests" / "test_telemetry")
    (PORT / "pytest.ini").write_text("[pytest]\n")  # the rootdir: not this repo's settings
    # files the tests read from FastAPI's tree (the current directory)
    for name in ("docs/en/docs/img/favicon.png",):
        if (src / name).exists():
            (PORT / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src / name, PORT / name)
    for path in PORT.rglob("*.py"):
        text = path.read_text()
        ported = port_source(text)
        if ported != text:
            path.write_text(ported)


# -- functional tests ----------------------------------------------------------------


def category(module: str) -> str:
    return module.split("/")[2].removeprefix("test_")


def run_group(python: Path, modules: list[str], env: dict[str, str]) -> list[dict[str, object]]:
    """One pytest process for ``modules`` (one category); a module whose tests hang
    or crash the process is run again alone."""
    xml = PORT / ".junit" / (modules[0].replace("/", "_") + f".{len(modules)}.xml")
    xml.parent.mkdir(exist_ok=True)
    xml.unlink(missing_ok=True)
    cmd = [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--timeout={TEST_TIMEOUT}",
           "-k", "not test_openapi", f"--junitxml={xml}", *modules]  # fmt: skip
    started = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=PORT, env=env, capture_output=True, text=True, timeout=TIMEOUT * len(modules))
        output, code = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired:
        output, code = f"timed out after {TIMEOUT * len(modules)} s", -1
    seconds = round(time.monotonic() - started, 1)
    if (code not in (0, 1, 5) or not xml.exists()) and len(modules) > 1:
        return [r for m in modules for r in run_group(python, [m], env)]
    results = {
        m: {"module": m, "seconds": seconds, "passed": 0, "failed": 0, "skipped": 0, "failures": []} for m in modules
    }
    by_dotted = {m.removesuffix(".py").replace("/", "."): m for m in modules}
    if xml.exists():
        for case in ET.parse(xml).getroot().iter("testcase"):
            dotted = case.get("classname") or case.get("name", "")
            module = by_dotted.get(dotted) or next((m for d, m in by_dotted.items() if dotted.startswith(d)), None)
            if module is None:
                module = modules[0] if len(modules) == 1 else None
            if module is None:
                continue
            r = results[module]
            bad = case.find("failure")
            if bad is None:
                bad = case.find("error")
            if bad is not None:
                r["failed"] += 1
                r["failures"].append(
                    {"test": case.get("name", "?"), "reason": reason(bad.get("message") or "", bad.text or "")}
                )
            elif case.find("skipped") is not None:
                r["skipped"] += 1
            else:
                r["passed"] += 1
    for r in results.values():
        if code not in (0, 1, 5) and not r["failures"] and len(modules) == 1:
            last = output.strip().splitlines()[-1] if output.strip() else ""
            r["failures"].append({"test": "(module)", "reason": reason(last)})
        r["ok"] = not r["failures"]
    return list(results.values())


def reason(message: str, text: str = "") -> str:
    """One line: the failure's message, or the last ``E`` line of its traceback."""
    if not message or message in ("collection failure", 'failed on setup with "') or message.startswith("failed on"):
        errors = [line[1:].strip() for line in text.splitlines() if line.startswith("E ")]
        message = errors[-1] if errors else message
    return " ".join(message.split())[:300]


# -- OpenAPI documents ---------------------------------------------------------------

DUMP = r"""
import importlib, json, sys, warnings, pathlib
warnings.simplefilter("ignore")
out = {}
for mod in sys.argv[2:]:
    try:
        m = importlib.import_module(mod)
        app = getattr(m, "app", None)
        if app is None or not hasattr(app, "openapi"):
            continue
        out[mod] = {"doc": app.openapi()}
    except BaseException as exc:
        out[mod] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
pathlib.Path(sys.argv[1]).write_text(json.dumps(out, default=str))
"""


def tutorial_modules(root: Path) -> list[str]:
    mods = []
    for path in sorted((root / "docs_src").rglob("*.py")):
        if path.name == "__init__.py" or ("app_testing" in path.parts and path.name.startswith("test_")):
            continue
        if re.search(r"^app\s*=", path.read_text(), re.M) is None:
            continue
        mods.append(".".join(path.relative_to(root).with_suffix("").parts))
    return mods


def dump_docs(python: Path, root: Path, env: dict[str, str], modules: list[str], name: str) -> dict[str, dict]:
    out = WORK / f"openapi-{name}.json"
    out.unlink(missing_ok=True)
    subprocess.run([str(python), "-c", DUMP, str(out), *modules], cwd=root, env=env, timeout=900,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    return json.loads(out.read_text()) if out.exists() else {}


def diff(a: object, b: object, path: str = "") -> list[str]:
    """Where ``b`` (Catzilla's) differs from ``a`` (FastAPI's)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            where = f"{path}/{key}"
            if key not in b:
                out.append(f"{where}: missing")
            elif key not in a:
                out.append(f"{where}: extra {json.dumps(b[key])[:80]}")
            else:
                out.extend(diff(a[key], b[key], where))
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in diff(x, y, f"{path}/{i}")]
    if a != b:
        return [f"{path or '/'}: {json.dumps(b)[:80]} instead of {json.dumps(a)[:80]}"]
    return []


def compare_docs(fastapi: dict[str, dict], ported: dict[str, dict]) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for mod, ref in fastapi.items():
        if "doc" not in ref:
            continue  # FastAPI itself cannot build it here (e.g. a missing extra)
        got = ported.get(mod)
        if got is None or "doc" not in got:
            result[mod] = [(got or {}).get("error", "no document")]
            continue
        doc = got["doc"]
        if ref["doc"].get("info", {}).get("title") == "FastAPI" and doc.get("info", {}).get("title") == "Catzilla":
            doc["info"]["title"] = "FastAPI"
        result[mod] = diff(ref["doc"], doc)
    return result


# -- the report ----------------------------------------------------------------------


def write_report(results: list[dict], docs: dict[str, list[str]], path: Path) -> None:
    cats: dict[str, list[dict]] = {}
    for r in results:
        cats.setdefault(category(r["module"]), []).append(r)
    doc_cats: dict[str, list[str]] = {}
    for mod in docs:
        doc_cats.setdefault(mod.split(".")[1], []).append(mod)
    passed = sum(r["ok"] for r in results)
    docs_ok = sum(not d for d in docs.values())
    lines = [
        "# FastAPI compatibility",
        "",
        f"FastAPI {FASTAPI_VERSION}'s tutorial apps (`docs_src/`) and their tests (`tests/test_tutorial/`),",
        "ported by changing imports only, as `make compat` (scripts/compat.py) does: `FastAPI` -> `Catzilla`,",
        "`APIRouter` -> `RouterGroup`, `include_router` -> `include_routes`, modules `fastapi.*` and",
        "`starlette.*` -> `catzilla.*`. An app is one test module; it passes when none of its functional tests",
        "(all but the `test_openapi*` ones, which compare whole documents) fails. The OpenAPI columns compare",
        "each tutorial module's `app.openapi()` with FastAPI's own (the default title aside).",
        "",
        f"**{passed} of {len(results)} apps pass ({100 * passed / max(len(results), 1):.0f}%); "
        f"{docs_ok} of {len(docs)} OpenAPI documents match ({100 * docs_ok / max(len(docs), 1):.0f}%).**",
        "",
        "| category | apps passing | OpenAPI documents matching |",
        "| --- | --- | --- |",
    ]
    for cat in sorted(set(cats) | set(doc_cats)):
        rs = cats.get(cat, [])
        ds = doc_cats.get(cat, [])
        ok = sum(r["ok"] for r in rs)
        dok = sum(not docs[m] for m in ds)
        lines.append(f"| {cat} | {ok}/{len(rs)} | {dok}/{len(ds)} |")
    lines += ["", "## Failing apps", ""]
    for r in results:
        if not r["ok"]:
            first = r["failures"][0]
            more = f" (+{len(r['failures']) - 1} more)" if len(r["failures"]) > 1 else ""
            lines.append(f"- `{r['module']}` {first['test']}: {first['reason']}{more}")
    lines += ["", "## OpenAPI differences", ""]
    for mod, diffs in sorted(docs.items()):
        if diffs:
            shown = "; ".join(diffs[:3]) + (f"; +{len(diffs) - 3} more" if len(diffs) > 3 else "")
            lines.append(f"- `{mod}`: {shown}")
    generated = "\n".join(lines[2:]) + "\n"
    # Only the part between the markers is the run's; the rest of the page is written by hand.
    begin, end = "<!-- compat.py: begin -->\n", "<!-- compat.py: end -->\n"
    old = path.read_text() if path.exists() else ""
    if begin in old and end in old:
        head, _, rest = old.partition(begin)
        _, _, tail = rest.partition(end)
        path.write_text(head + begin + generated + end + tail)
    else:
        path.write_text("\n".join(lines[:2]) + "\n" + begin + generated + end)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-k", dest="only", default="", help="only test modules whose path contains this")
    parser.add_argument("-j", dest="jobs", type=int, default=2, help="test modules run at once")
    parser.add_argument("--no-openapi", action="store_true", help="skip the OpenAPI comparison")
    parser.add_argument("--report", type=Path, default=REPORT, help="where the Markdown report goes")
    args = parser.parse_args()

    src = extract(fetch_sdist())
    python = venv_python()
    make_port(src)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    site = built_catzilla()
    say("catzilla:", (site / "catzilla").resolve())  # the one this interpreter imports (PYTHONPATH picks another)
    env = dict(base_env, PYTHONPATH=f"{PORT}{os.pathsep}{site}", PYTHONDONTWRITEBYTECODE="1")

    modules = sorted(str(p.relative_to(PORT)) for p in (PORT / "tests" / "test_tutorial").rglob("test_*.py"))
    modules = [m for m in modules if args.only in m]
    groups: dict[str, list[str]] = {}
    for m in modules:
        groups.setdefault(category(m), []).append(m)
    results: list[dict] = []
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        for rs in pool.map(lambda ms: run_group(python, ms, env), groups.values()):
            results.extend(rs)
            ok = sum(r["ok"] for r in rs)
            say(f"{category(rs[0]['module'])}: {ok}/{len(rs)}", f"{rs[0]['seconds']}s")
    docs: dict[str, list[str]] = {}
    if not args.no_openapi:
        want = args.only.removeprefix("tests/test_tutorial/").removeprefix("test_").strip("/").replace("/", ".")
        mods = [m for m in tutorial_modules(PORT) if want in m]
        ref = dump_docs(python, src, dict(base_env, PYTHONPATH=str(src)), mods, "fastapi")
        got = dump_docs(python, PORT, env, mods, "catzilla")
        docs = compare_docs(ref, got)
    (WORK / "results.json").write_text(json.dumps({"apps": results, "openapi": docs}, indent=1))
    write_report(results, docs, args.report)
    passed = sum(r["ok"] for r in results)
    print(f"compat: {passed}/{len(results)} apps pass; {sum(not d for d in docs.values())}/{len(docs)} documents match")


if __name__ == "__main__":
    main()
