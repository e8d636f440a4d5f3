"""Reject oversized request bodies early: uvicorn itself sets no limit."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def declared_too_large(scope: Scope, max_bytes: int) -> bool:
    """A Content-Length over the limit (or not a number): answer 413 before reading a byte."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return not value.isdigit() or int(value) > max_bytes
    return False


def _streamed(scope: Scope) -> bool:
    """A body sent without a Content-Length (chunked): its size is known only as it arrives.
    With a Content-Length, the server reads exactly that many bytes and no more."""
    return not any(name == b"content-length" for name, _ in scope["headers"]) and any(
        name == b"transfer-encoding" for name, _ in scope["headers"]
    )


async def send_413(send: Send) -> None:
    body = b'{"detail":"request body too large"}'
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodySizeLimit:
    """413 from Content-Length before reading, or as soon as streamed bytes pass the limit."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if declared_too_large(scope, self.max_bytes):
            await send_413(send)
            return
        if not _streamed(scope):  # no body, or one whose declared length is within the limit
            await self.app(scope, receive, send)
            return
        received = 0
        rejected = False
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received, rejected
            if rejected:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Answer now and tell the app the client is gone: it stops reading, and
                    # whatever it tries to send afterwards is dropped.
                    rejected = True
                    if not response_started:
                        await send_413(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if rejected:
                return
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not rejected:
                raise
