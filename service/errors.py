"""Error responses: always JSON, never a stack trace."""

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

logger = logging.getLogger("service.errors")

_UNAVAILABLE = {"detail": "database unavailable, try again shortly"}


def _is_database_outage(error: BaseException) -> bool:
    if isinstance(error, OperationalError | InterfaceError | PoolTimeoutError):
        return True
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    # Connect failures reach us as the driver's OSError (refused, reset) or a timeout.
    return isinstance(error, OSError | TimeoutError)


async def _unhandled(request: Request, error: Exception) -> JSONResponse:
    if _is_database_outage(error):
        logger.warning("database unavailable: %s", type(error).__name__)
        return JSONResponse(_UNAVAILABLE, status_code=503, headers={"Retry-After": "1"})
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse({"detail": "internal server error"}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Exception, _unhandled)
