"""Shared, deterministic payloads for every benchmark app (standard library only).

Every app serves the same bytes: the hello message, and the ~100 KB JSON
document below, which each framework serializes per request through its own
JSON path. Only ASCII strings, ints and bools, so that every serializer
(json, orjson, ...) in compact form writes the same bytes.
"""

HELLO = {"message": "Hello, World!"}


def large_document(items: int = 600) -> dict:
    return {
        "count": items,
        "items": [
            {
                "id": i,
                "name": f"item-{i:05d}",
                "sku": f"SKU-{(i * 7919) % 100000:05d}",
                "price_cents": (i * 37) % 10000,
                "in_stock": i % 3 != 0,
                "tags": ["alpha", "beta", "gamma"][: 1 + i % 3],
                "description": "A benchmark item with a short description.",
            }
            for i in range(items)
        ],
    }


LARGE = large_document()

# 1 MiB of filler for the memory study's responses.
BLOCK = b"x" * (1024 * 1024)
