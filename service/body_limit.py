"""Reject oversized request bodies early: uvicorn itself sets no limit."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _framing(scope: Scope) -> tuple[bytes | None, bool]:
    """The Content-Length header's value (None: none), and whether a Transfer-Encoding is
    declared. One pass over the headers: this runs for every request."""
    length = None
    streamed = False
    for name, value in scope["headers"]:
        if name == b"content-length" and length is None:  # the first, as the server reads it
            length = value
        elif name == b"transfer-encoding":
            streamed = True
    return length, streamed


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
        length, streamed = _framing(scope)
        if length is not None:
            if length.isdigit() and int(length) <= self.max_bytes:
                # The server reads exactly that many bytes and no more.
                await self.app(scope, receive, send)
            else:  # over the limit, or not a number: 413 before reading a byte
                await send_413(send)
            return
        if not streamed:  # no body
            await self.app(scope, receive, send)
            return
        # A body sent without a Content-Length (chunked): its size is known only as it arrives.
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
