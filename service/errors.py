"""Error responses: always JSON, never a stack trace.

Each database failure is answered for what it is, and logged once, in one line, with its cause
(the driver's message, which holds no password):
- an outage (the store's `Unavailable`): 503 with Retry-After, as soon as the driver gives up
  (connect and pool timeouts bound that);
- a full disk (`StorageFull`): 507, without Retry-After: it lasts until someone makes room;
- a missing table (`SchemaNotMigrated`): 503, the schema is behind the code.
Anything unexpected is a JSON 500.
"""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from service.store import SchemaNotMigrated, StorageFull, Unavailable

logger = logging.getLogger("service.errors")

UNAVAILABLE = {"detail": "database unavailable, try again shortly"}
STORAGE_FULL = {"detail": "database storage full"}
NOT_MIGRATED = {"detail": "database schema not migrated"}
INTERNAL_ERROR = {"detail": "internal server error"}


async def _database_unavailable(request: Request, error: Exception) -> JSONResponse:
    logger.warning("database unavailable on %s %s: %s", request.method, request.url.path, error)
    return JSONResponse(UNAVAILABLE, status_code=503, headers={"Retry-After": "1"})


async def _storage_full(request: Request, error: Exception) -> JSONResponse:
    logger.error("database storage full on %s %s: %s", request.method, request.url.path, error)
    return JSONResponse(STORAGE_FULL, status_code=507)


async def _schema_not_migrated(request: Request, error: Exception) -> JSONResponse:
    logger.error(
        "schema not migrated on %s %s: %s (run the migrations)",
        request.method,
        request.url.path,
        error,
    )
    return JSONResponse(NOT_MIGRATED, status_code=503)


async def _internal_error(request: Request, error: Exception) -> JSONResponse:
    logger.error(
        "unhandled %s on %s %s",
        type(error).__name__,
        request.method,
        request.url.path,
        exc_info=error,
    )
    return JSONResponse(INTERNAL_ERROR, status_code=500)


async def _invalid_request(request: Request, error: Exception) -> JSONResponse:
    """422 listing where and why; the offending input is not echoed back (it may be huge,
    hold a secret, or not even be JSON-serialisable, such as an overflowing float)."""
    assert isinstance(error, RequestValidationError)
    details = [
        {
            "loc": list(item.get("loc", ())),
            "msg": str(item.get("msg", "")),
            "type": item.get("type"),
        }
        for item in error.errors()
    ]
    return JSONResponse({"detail": details}, status_code=422)


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    headers = dict(error.headers or {})
    if error.status_code == 405:
        # Starlette names only the first route that matched the path; the users collection
        # is two routes (GET and POST), and Allow must list every method the path supports.
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return JSONResponse({"detail": error.detail}, status_code=error.status_code, headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    """The methods of every route whose path matches (PARTIAL: the path matches, the method
    does not; FULL cannot happen here, it was a 405), routers included in the app too."""
    methods: set[str] = set()
    pending = list(request.app.routes)
    while pending:
        route = pending.pop()
        # An included router (FastAPI wraps it) holds its routes in the router it wraps.
        inner = getattr(getattr(route, "original_router", None), "routes", None)
        if inner is None:
            inner = getattr(route, "routes", None)
        if inner is not None and not hasattr(route, "methods"):
            pending.extend(inner)
            continue
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    # Specific classes are handled inside the app (no traceback in the server log);
    # `Exception` last, as the catch-all for genuine bugs.
    app.add_exception_handler(Unavailable, _database_unavailable)
    app.add_exception_handler(StorageFull, _storage_full)
    app.add_exception_handler(SchemaNotMigrated, _schema_not_migrated)
    app.add_exception_handler(Exception, _internal_error)
