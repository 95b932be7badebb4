"""Command line: ``python -m catzilla run module:app [options]`` (see catzilla.cli),
``python -m catzilla diagnose [--json]``."""

from __future__ import annotations

import sys

from catzilla.cli import main

if __name__ == "__main__":
    sys.exit(main())
