"""The quick-start app: `make run` serves it on http://127.0.0.1:8000."""

import asyncio

from catzilla import Catzilla, Request

app = Catzilla(use_jemalloc=True, memory_profiling=True)


@app.get("/")
def hello():
    return {"message": "Hello from Catzilla"}


@app.get("/users/{user_id}")
def get_user(user_id: int, verbose: bool = False):
    user = {"id": user_id, "name": f"user-{user_id}"}
    return {**user, "allocator": app.get_allocator_info()["current_allocator"]} if verbose else user


@app.post("/items")
def create_item(request: Request):
    item = request.json()
    return {"created": item, "size": len(request.body)}


@app.get("/slow")
async def slow(delay: float = 0.1):
    await asyncio.sleep(delay)
    return {"slept": delay}


@app.get("/health")
def health():
    allocator_info = app.get_allocator_info()
    memory_stats = app.get_memory_stats()

    return {
        "status": "healthy",
        "allocator": allocator_info["current_allocator"],
        "memory_efficiency": memory_stats.get("fragmentation_percent", 0) < 10,
        "jemalloc_working": allocator_info["jemalloc_enabled"],
    }


if __name__ == "__main__":
    app.listen(port=8000, host="127.0.0.1")
