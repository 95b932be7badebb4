"""A small FastAPI app, ported to Catzilla: CRUD over an in-memory store.

The FastAPI original differed only in its imports and in how it is served:

    from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, status
    from fastapi.middleware.cors import CORSMiddleware
    from fastapi.responses import JSONResponse
    ...
    uvicorn.run(app)

Run it with ``python examples/inventory.py`` and open http://127.0.0.1:8000/docs.
Tested end to end by tests/framework/test_example_app.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from pydantic import BaseModel, Field

from catzilla import APIRouter, Depends, Header, HTTPException, JSONResponse, Query, Request, status
from catzilla import Catzilla as FastAPI
from catzilla.middleware import CORSMiddleware

API_TOKEN = "secret-token"


# ---- models ------------------------------------------------------------------------


class ItemIn(BaseModel):
    name: str = Field(min_length=1, max_length=50)
    price: float = Field(gt=0)
    tags: list[str] = []


class Item(ItemIn):
    id: int


class ItemPatch(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=50)
    price: float | None = Field(default=None, gt=0)
    tags: list[str] | None = None


class Message(BaseModel):
    detail: str


# ---- the store ---------------------------------------------------------------------------


class StoreFull(Exception):
    pass


class Store:
    """A dict behind a lock, with a capacity, and commit/rollback counters a test can read."""

    def __init__(self, capacity: int = 100) -> None:
        self.items: dict[int, Item] = {}
        self.next_id = 1
        self.capacity = capacity
        self.lock = threading.Lock()
        self.commits = 0
        self.rollbacks = 0

    def add(self, data: ItemIn) -> Item:
        with self.lock:
            if len(self.items) >= self.capacity:
                raise StoreFull(f"the store holds at most {self.capacity} items")
            item = Item(id=self.next_id, **data.model_dump())
            self.items[item.id] = item
            self.next_id += 1
            return item


store = Store()


def get_store() -> Store:
    return store


def transaction(db: Annotated[Store, Depends(get_store)]) -> Iterator[Store]:
    """A generator dependency: commit after the handler, roll back when it raised."""
    try:
        yield db
    except Exception:
        db.rollbacks += 1
        raise
    else:
        db.commits += 1


async def verify_token(x_token: Annotated[str, Header()]) -> str:
    if x_token != API_TOKEN:
        raise HTTPException(status_code=status.HTTP_401_UNAUTHORIZED, detail="Invalid X-Token header")
    return x_token


class Pagination:
    def __init__(self, skip: int = Query(0, ge=0), limit: int = Query(10, ge=1, le=100)) -> None:
        self.skip = skip
        self.limit = limit


# ---- routes -------------------------------------------------------------------------------


@asynccontextmanager
async def lifespan(app: Any) -> Any:
    app.state.started = True
    yield
    app.state.started = False


app = FastAPI(title="Inventory", version="1.0.0", lifespan=lifespan)
app.add_middleware(CORSMiddleware, allow_origins=["http://localhost:3000"], allow_methods=["*"], allow_headers=["*"])

router = APIRouter(prefix="/items", tags=["items"], dependencies=[Depends(verify_token)])


@app.exception_handler(StoreFull)
async def store_full_handler(request: Request, exc: StoreFull) -> JSONResponse:
    return JSONResponse(status_code=status.HTTP_507_INSUFFICIENT_STORAGE, content={"detail": str(exc)})


@app.get("/health")
def health() -> dict[str, Any]:
    return {"status": "ok", "items": len(store.items)}


@router.get("/", response_model=list[Item])
def list_items(
    page: Annotated[Pagination, Depends()],
    db: Annotated[Store, Depends(get_store)],
    tag: Annotated[list[str] | None, Query()] = None,
    q: Annotated[str | None, Query(min_length=2)] = None,
) -> Any:
    items = list(db.items.values())
    if tag:
        items = [i for i in items if set(tag) & set(i.tags)]
    if q:
        items = [i for i in items if q.lower() in i.name.lower()]
    return items[page.skip : page.skip + page.limit]


@router.get("/{item_id}", response_model=Item, responses={404: {"model": Message}})
def read_item(item_id: int, db: Annotated[Store, Depends(get_store)]) -> Item:
    if item_id not in db.items:
        raise HTTPException(status_code=404, detail="Item not found")
    return db.items[item_id]


@router.post("/", response_model=Item, status_code=status.HTTP_201_CREATED)
def create_item(item: ItemIn, db: Annotated[Store, Depends(transaction)]) -> Item:
    return db.add(item)


@router.patch("/{item_id}", response_model=Item, responses={404: {"model": Message}})
def update_item(item_id: int, patch: ItemPatch, db: Annotated[Store, Depends(transaction)]) -> Item:
    current = db.items.get(item_id)
    if current is None:
        raise HTTPException(status_code=404, detail="Item not found")
    updated = current.model_copy(update=patch.model_dump(exclude_unset=True))
    db.items[item_id] = updated
    return updated


@router.delete("/{item_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_item(item_id: int, db: Annotated[Store, Depends(transaction)]) -> None:
    if db.items.pop(item_id, None) is None:
        raise HTTPException(status_code=404, detail="Item not found")


app.include_router(router)


if __name__ == "__main__":
    app.listen(port=8000)
