"""Command line: ``python -m catzilla diagnose [--json]``."""

from __future__ import annotations

import argparse
import json
import sys

from catzilla.diagnose import collect, render


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="catzilla")
    sub = parser.add_subparsers(dest="command", required=True)
    diag = sub.add_parser("diagnose", help="platform, build options and allocator status")
    diag.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if args.command == "diagnose":
        report = collect()
        print(json.dumps(report, indent=2) if args.json else render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
