"""The framework benchmark: bare hello world vs two typed query parameters and a pydantic body.

    taskset -c 0 .venv/bin/python examples/bench_typed_route.py &
    taskset -c 1 wrk -t1 -c64 -d5s http://127.0.0.1:8102/
    .venv/bin/python examples/bench_typed_route.py --lua > /tmp/post.lua
    taskset -c 1 wrk -t1 -c64 -d5s -s /tmp/post.lua 'http://127.0.0.1:8102/items?q=abc&limit=5'

Alternate the two in one session (the machine is shared). docs/framework.md has the numbers.
"""

import os
import sys

from pydantic import BaseModel

from catzilla import Catzilla, Query

LUA = """wrk.method = "POST"
wrk.body = '{"name":"widget","price":9.5,"tags":["a","b"]}'
wrk.headers["Content-Type"] = "application/json"
"""

app = Catzilla(production=True, docs_url=None)


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []


@app.get("/")
def hello():
    return {"message": "Hello, World!"}


@app.post("/items")
def create_item(item: Item, q: str, limit: int = Query(10, ge=1, le=100)) -> Item:
    return item


@app.post("/items-dict")
def create_item_dict(item: Item, q: str, limit: int = Query(10, ge=1, le=100)):
    return {"q": q, "limit": limit, "name": item.name}


if __name__ == "__main__":
    if "--lua" in sys.argv:
        print(LUA, end="")
    else:
        app.listen(port=int(os.environ.get("PORT", "8102")))
