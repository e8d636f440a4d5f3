"""GET /users/{id} and POST /users on their happy paths, without FastAPI's per-request work.

Profiling under wrk showed FastAPI's pipeline (routing, dependency solving, response-model
validation) costing more per request than the database round trip itself. These two routes are
the hot ones, so this ASGI layer in front of the FastAPI app serves them directly: the same
pydantic models validate the input, the same store runs the SQL, the same JSON comes back.
Everything off the happy path (a bad id, a body that does not validate, a user that does not
exist, another content type) is handed to the FastAPI route unchanged, with the body replayed,
so errors are shaped in one place. The OpenAPI document still comes from the FastAPI routes;
the tests drive both lanes and compare their answers.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from pydantic import TypeAdapter, ValidationError
from starlette.types import Message, Receive, Scope, Send

from service.body_limit import declared_too_large, send_413
from service.errors import INTERNAL_ERROR, UNAVAILABLE
from service.routers.users import EMAIL_TAKEN, MAX_ID
from service.schemas import UserCreate
from service.store import EmailTaken, Unavailable

logger = logging.getLogger("service.fast_lane")
_DISCONNECTED = b"\0disconnected"  # a sentinel no real body can be (it is not JSON)
_validate_create = TypeAdapter(UserCreate).validate_json
_to_json = TypeAdapter(dict[str, Any]).dump_json
_USER_PREFIX = "/users/"


class FastLane:
    def __init__(self, api: FastAPI, *, max_body_bytes: int) -> None:
        self.api = api
        self.max_body_bytes = max_body_bytes

    def __getattr__(self, name: str) -> Any:
        # Everything else (openapi(), state, routes) is the FastAPI app's.
        return getattr(self.api, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method, path = scope["method"], scope["path"]
            if method == "GET" and path.startswith(_USER_PREFIX):
                user_id = _parse_id(path[len(_USER_PREFIX) :])
                if user_id is not None and await self._get(user_id, send):
                    return
            elif method == "POST" and path == "/users" and _is_json(scope):
                await self._create(scope, receive, send)
                return
        await self.api(scope, receive, send)

    async def _get(self, user_id: int, send: Send) -> bool:
        """Answer when the user exists (or the database is down); False hands over to FastAPI."""
        try:
            user = await self.api.state.store.get(user_id)
        except Unavailable:
            await _send_json(send, 503, UNAVAILABLE, retry_after=True)
            return True
        except Exception:  # anything else: FastAPI's route runs it again and shapes the 500
            return False
        if user is None:
            return False  # FastAPI's route answers the 404
        await _send_json(send, 200, user)
        return True

    async def _create(self, scope: Scope, receive: Receive, send: Send) -> None:
        if declared_too_large(scope, self.max_body_bytes):
            await send_413(send)  # before reading a byte (and before any 100 Continue)
            return
        body = await self._read_body(receive)
        if body is _DISCONNECTED:
            return  # the client left before sending it all: nothing to create, no one to answer
        if body is None:
            await send_413(send)
            return
        try:
            data = _validate_create(body)
        except (ValidationError, ValueError):
            await self.api(scope, _replay(body, receive), send)  # FastAPI shapes the 4xx
            return
        try:
            user = await self.api.state.store.create(data.name, str(data.email))
        except EmailTaken:
            await _send_json(send, 409, EMAIL_TAKEN)
        except Unavailable:
            await _send_json(send, 503, UNAVAILABLE, retry_after=True)
        except Exception:
            logger.exception("unhandled error on POST /users")
            await _send_json(send, 500, INTERNAL_ERROR)
        else:
            await _send_json(send, 201, user)

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole body; None once it passes the limit (it is not read further), or
        _DISCONNECTED when the client went away before its end."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return _DISCONNECTED
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _parse_id(text: str) -> int | None:
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        return None
    value = int(text)
    return value if 1 <= value <= MAX_ID else None


def _is_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            media_type = value.split(b";", 1)[0].strip().lower()
            return media_type == b"application/json"
    return False


def _replay(body: bytes, receive: Receive) -> Receive:
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send_json(send: Send, status: int, payload: Any, *, retry_after: bool = False) -> None:
    body = _to_json(payload)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if retry_after:
        headers.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
