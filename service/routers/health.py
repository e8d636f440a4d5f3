"""Liveness and readiness probes."""

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from service.dependencies import StoreDep

router = APIRouter(tags=["health"])

READINESS_TIMEOUT_SECONDS = 2.0


@router.get("/healthz")
async def healthz() -> dict:
    """Answer 200 while the process serves; never touches the database."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Database down or schema not at head."}})
async def readyz(request: Request, store: StoreDep) -> JSONResponse:
    """Answer 200 when the database answers and the schema is at head, else 503."""
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_SECONDS):
            current = await store.schema_versions()
    except Exception:
        return JSONResponse({"status": "unavailable", "reason": "database"}, status_code=503)
    if current != set(request.app.state.migration_heads):
        return JSONResponse(
            {"status": "unavailable", "reason": "schema not at head"}, status_code=503
        )
    return JSONResponse({"status": "ok"})
