"""The root, and the liveness and readiness probes."""

import asyncio
import logging
from collections.abc import Collection
from enum import StrEnum

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from service.dependencies import StoreDep
from service.failures import DatabaseFailure, SchemaNotMigrated

router = APIRouter(tags=["health"])
logger = logging.getLogger("service.health")

READINESS_TIMEOUT_SECONDS = 2.0


class SchemaState(StrEnum):
    AT_HEAD = "at head"
    AHEAD = "ahead"
    BEHIND = "behind"
    DIVERGED = "diverged"


def schema_state(
    database: Collection[str], heads: Collection[str], known: Collection[str]
) -> SchemaState:
    """Where the database's schema stands against the code's migrations.

    `database` holds the versions in alembic_version, `heads` the code's heads, `known` every
    revision the code defines.
    - at head: the database versions are exactly the code's heads.
    - ahead: every database version is unknown to the code (a newer release migrated the
      database during a rolling deploy; its migrations keep the older code working).
    - behind: every database version is known to the code, yet they are not the heads (a known
      non-head revision, a missing head, or no version at all): migrations are pending.
    - diverged: some versions are known and some unknown; no release is known to fit.
    Ready iff at head or ahead.
    """
    versions = set(database)
    if versions == set(heads):
        return SchemaState.AT_HEAD
    unknown = versions - set(known)
    if not unknown:
        return SchemaState.BEHIND
    if unknown == versions:
        return SchemaState.AHEAD
    return SchemaState.DIVERGED


# The root answers 200, not 404: a probe that knows no route of the app asks for it (the
# launcher's systemd readiness watcher does unless --ready-path names one), and a 404 for it in
# the access log on every start read as an error.
@router.head("/", include_in_schema=False)
@router.get("/")
async def index() -> dict[str, str]:
    """Name the service and where its documents and probes are; never touches the database."""
    return {
        "service": "users",
        "docs": "/docs",
        "openapi": "/openapi.json",
        "health": "/healthz",
        "readiness": "/readyz",
    }


# HEAD too, as load balancers often probe with it (left out of the OpenAPI document, whose
# operations are the GETs).
@router.head("/healthz", include_in_schema=False)
@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Answer 200 while the process serves; never touches the database."""
    return {"status": "ok"}


@router.head("/readyz", include_in_schema=False)
@router.get(
    "/readyz",
    responses={503: {"description": "Database down, or the schema behind or diverged."}},
)
async def readyz(request: Request, store: StoreDep) -> JSONResponse:
    """Answer 200 when the database answers and the schema is at or ahead of the code's head."""
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_SECONDS):
            current = await store.schema_versions()
    except SchemaNotMigrated:  # not even Alembic's version table
        current = set()
    except DatabaseFailure as error:  # its text is redacted
        return _not_ready(f"database {error.cause}", str(error))
    except TimeoutError:
        return _not_ready("database timed out", f"no answer in {READINESS_TIMEOUT_SECONDS:g} s")
    state = request.app.state
    heads = state.migration_heads
    if current == set(heads):  # the usual answer, without reading the revision files
        return JSONResponse({"status": "ok", "schema": SchemaState.AT_HEAD})
    known = await asyncio.to_thread(state.known_revisions)
    verdict = schema_state(current, heads, known)
    if verdict is SchemaState.AHEAD:
        return JSONResponse({"status": "ok", "schema": verdict})
    detail = f"database at {sorted(current) or 'no revision'}, code heads {sorted(heads)}"
    return _not_ready(f"schema {verdict}", detail)


def _not_ready(reason: str, detail: str) -> JSONResponse:
    logger.warning("not ready: %s (%s)", reason, detail)
    return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
