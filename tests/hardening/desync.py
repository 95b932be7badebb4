"""Requests of the http-desync-guardian corpus, as raw bytes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# Not in the repo: the corpus is shared between checkouts, beside the repo's
# directory, or wherever CATZILLA_DESYNC_CORPUS names. Tests using it skip
# when it is absent (missing()).
CORPUS = Path(
    os.environ.get("CATZILLA_DESYNC_CORPUS")
    or Path(__file__).resolve().parents[2].parent / "shared" / "corpora" / "http-desync-guardian"
)


def missing() -> str | None:
    """Why the corpus cannot be used, or None when it is there."""
    if not any(CORPUS.glob("*.yaml")):
        return (
            f"http-desync-guardian corpus not found at {CORPUS} (a directory of its tests/*.yaml; "
            "set CATZILLA_DESYNC_CORPUS to use one elsewhere)"
        )
    return None


@dataclass(frozen=True)
class Case:
    file: str
    name: str
    tier: str
    reason: str
    raw: bytes

    @property
    def id(self) -> str:
        return f"{self.file}:{self.name}"


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def build(entry: dict[str, Any]) -> bytes:
    """The request line and headers exactly as the corpus gives them. A Host
    header is added when the case has none (HTTP/1.1 requires one, and its
    absence is not what the case is about); no body is sent."""
    version = _text(entry.get("version"))
    line = f"{_text(entry.get('method'))} {_text(entry.get('uri'))}"
    if version:
        line += f" {version}"
    headers = entry.get("headers") or []
    lines = [line]
    if not any(_text(h.get("name")).strip().lower() == "host" for h in headers):
        lines.append("Host: example.com")
    for h in headers:
        lines.append(f"{_text(h.get('name'))}: {_text(h.get('value'))}")
    text = "\r\n".join(lines) + "\r\n\r\n"
    try:
        return text.encode("latin-1")  # the corpus' \xNN escapes are single bytes
    except UnicodeEncodeError:
        return text.encode("utf-8")  # characters beyond Latin-1 (e.g. U+017F) go as UTF-8


def load() -> list[Case]:
    cases: list[Case] = []
    for path in sorted(CORPUS.glob("*.yaml")):
        for entry in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
            exp = entry.get("expected") or {}
            cases.append(
                Case(
                    path.stem, _text(entry.get("name")), _text(exp.get("tier")), _text(exp.get("reason")), build(entry)
                )
            )
    return cases
