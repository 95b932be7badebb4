"""What every TFB app shares (standard library only: each runs in its own venv).

The SQL, TFB's rule for the `queries` / `count` parameter, the fortunes
template, and the pool size, the same for every server so that none of them
gets more database connections than another.
"""

from __future__ import annotations

import os

READ_ROW_SQL = "SELECT id, randomnumber FROM world WHERE id = $1"
SELECT_FORTUNES_SQL = "SELECT id, message FROM fortune"
# asyncpg's numbered parameters: rows as (id, randomNumber)
UPDATE_SQL = "UPDATE world SET randomnumber = $2 WHERE id = $1"
# psycopg's %s, positional: rows as (randomNumber, id)
READ_ROW_SQL_PSYCOPG = "SELECT id, randomnumber FROM world WHERE id = %s"
UPDATE_SQL_PSYCOPG = "UPDATE world SET randomnumber = %s WHERE id = %s"
ADDED_FORTUNE = "Additional fortune added at request time."
TEMPLATES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")
POOL_SIZE = int(os.environ.get("TFB_POOL_SIZE", "16"))
HELLO = {"message": "Hello, World!"}


def query_count(value: str | None) -> int:
    """TFB: a missing or non-integer value counts as 1; clamp to 1..500."""
    try:
        n = int(value) if value is not None else 1
    except ValueError:
        return 1
    return 1 if n < 1 else 500 if n > 500 else n
