"""Error responses: always JSON, never a stack trace.

Each database failure (service/failures.py) is answered for what it is and logged once, in one
line, with its cause and the driver's message (redacted by the store), no traceback:
- 503 `database unavailable: <cause>` (unreachable, connection lost, timed out, dropped or
  missing, access denied, overloaded, busy, read-only, misconfigured, server error), with
  Retry-After when the cause passes by itself;
- 503 `database schema not migrated`: a table or column the code needs is missing;
- 507 `database storage full`, without Retry-After: it lasts until someone makes room.
Anything unexpected (a bug) is a JSON 500, logged with its traceback.
"""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from service.failures import DatabaseFailure

logger = logging.getLogger("service.errors")

INTERNAL_ERROR = {"detail": "internal server error"}


async def _database_failure(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, DatabaseFailure)
    logger.log(
        logging.WARNING if error.transient else logging.ERROR,
        "%s on %s %s: %s",
        error.public_detail,
        request.method,
        request.url.path,
        error,
    )
    headers = {"Retry-After": "1"} if error.transient else None
    return JSONResponse(
        {"detail": error.public_detail}, status_code=error.status_code, headers=headers
    )


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
    # Database failures are handled inside the app (no traceback in the server log);
    # `Exception` last, as the catch-all for genuine bugs.
    app.add_exception_handler(DatabaseFailure, _database_failure)
    app.add_exception_handler(Exception, _internal_error)
