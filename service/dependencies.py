"""Request dependencies, as named Annotated aliases.

They are `async def` on purpose: FastAPI runs a plain `def` dependency in a thread pool, a
thread hand-off on every request for what is an attribute read.
"""

from typing import Annotated

from fastapi import Depends, Request

from service.store import UserStore


async def get_store(request: Request) -> UserStore:
    store: UserStore = request.app.state.store
    return store


StoreDep = Annotated[UserStore, Depends(get_store)]
