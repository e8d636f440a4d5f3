"""The application uvicorn serves: `uvicorn service.main:app`.

Every route is an ordinary FastAPI route: middleware, dependencies (and their overrides) and
response models apply to every answer. The only ASGI layer is the body limit, added inside the
app with `add_middleware`.
"""

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from typing import TYPE_CHECKING

from fastapi import FastAPI

if TYPE_CHECKING:
    from alembic_prestart import CodeRevisions

from service.body_limit import BodySizeLimit
from service.errors import install_error_handlers
from service.routers import add_routes, health, users
from service.settings import ALEMBIC_INI, get_settings
from service.store import open_store


@cache
def _code_revisions() -> "CodeRevisions":
    # The launcher's public answer: its static reading of the revision graph when it is sure,
    # else Alembic's own script directory (the slow import, only then).
    from alembic_prestart import code_revisions

    return code_revisions(ALEMBIC_INI)


def migration_heads() -> tuple[str, ...]:
    """The revisions the code expects the database to be at."""
    return _code_revisions().heads


def known_revisions() -> frozenset[str]:
    """Every revision id the code's migrations define (heads included)."""
    return _code_revisions().known


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.store = await open_store(get_settings())
    app.state.migration_heads = migration_heads()
    app.state.known_revisions = known_revisions  # called (in a thread) only when needed
    # Everything allocated so far lives as long as the process: keep it out of the collector's
    # full passes, which otherwise showed up as 30-70 ms pauses in the p99 latency.
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        await app.state.store.close()


def create_app() -> FastAPI:
    app = FastAPI(title="Users service", version="0.1.0", lifespan=lifespan)
    # The hot routes first: FastAPI tries the routes in order.
    add_routes(app, users.router)
    add_routes(app, health.router)
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=get_settings().max_body_bytes)
    # GET /metrics and what it counts (service/metrics.py): after the error handlers and the
    # other middleware, as it counts their answers too. METRICS_ENABLED=false: none of it.
    from service.metrics import install_metrics

    install_metrics(app)
    return app


app = create_app()
