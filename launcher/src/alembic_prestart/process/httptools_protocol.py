"""uvicorn's httptools protocol with a limit on what a request may send that is not body.

httptools hands uvicorn a header only once it is complete, gluing its pieces together as they
arrive (quadratic in its size), and uvicorn sets it no limit: a 64 MB header held the event loop
5.4 s, 128 MB 28 s, while every other connection waited. This protocol counts the bytes it
feeds the parser and requires progress within every MAX_HEADER_BYTES (header_limit.py): a head
completed, body bytes delivered or a message completed. When the bytes fed since the last
progress would pass the limit, it feeds only up to the limit; no progress there means the head
(or a chunked body's trailers) is too large: 431 Request Header Fields Too Large, the
connection closed, the rest never read. So the parser never holds more than the limit. The
431 goes out only when it would answer the request that is too large; behind a pipelined request
still being answered, the connection is just closed.

The count is exact for a head that starts a read, as every request's head does unless the
client pipelines; the head of a request that starts inside the read (or slice) that ended the
previous one may pass the limit by what of it came in that read.

uvicorn takes a protocol class through its `--http` option (public), but HttpToolsProtocol is
not a public base class. Written against uvicorn 0.55.0 and checked with 0.29.0, the launcher's
lowest: it extends data_received, on_headers_complete, on_body and on_message_complete, and
reads transport, pipeline, cycle (response_started, response_complete), logger and
server_state.default_headers. A uvicorn whose class lacks those methods fails this module's
import, and the launcher falls back to uvicorn's default HTTP implementation with one warning
(uvicorn_main.py).
"""

from __future__ import annotations

import os
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from alembic_prestart.process import header_limit

EXTENDED = ("data_received", "on_headers_complete", "on_body", "on_message_complete")
for _name in EXTENDED:
    if not callable(getattr(HttpToolsProtocol, _name, None)):
        raise ImportError(f"uvicorn {uvicorn.__version__}'s HttpToolsProtocol has no {_name}()")

TOO_LARGE_BODY = b'{"detail":"Request Header Fields Too Large"}'


class HeaderLimitedHttpToolsProtocol(HttpToolsProtocol):
    max_header_bytes = header_limit.max_header_bytes(os.environ)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unparsed = 0  # bytes fed since the parser last made progress
        self._progress = 0  # counts the callbacks that are progress
        self._in_message = False  # between a head's end and its message's end

    def data_received(self, data: bytes) -> None:
        while self._unparsed + len(data) > self.max_header_bytes:
            room = self.max_header_bytes - self._unparsed
            progress = self._progress
            self._unparsed += room
            if room:
                super().data_received(data[:room])
                if self._handed_over():
                    return
            if self._progress == progress:
                self._refuse()
                return
            data = data[room:]
        self._unparsed += len(data)
        if data:
            super().data_received(data)

    # Progress: the count starts again. (Written out, not a helper: once per request or body
    # piece, a call costs more than these two lines.)
    def on_headers_complete(self) -> None:
        self._unparsed = 0
        self._progress += 1
        self._in_message = True
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._unparsed = 0
        self._progress += 1
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._unparsed = 0
        self._progress += 1
        self._in_message = False
        super().on_message_complete()

    def _handed_over(self) -> bool:
        """The connection is closing (a 400 for a malformed request) or another protocol took
        it (a WebSocket upgrade): nothing more is this protocol's to feed."""
        return self.transport.is_closing() or self.transport.get_protocol() is not self

    def _refuse(self) -> None:
        self.logger.warning(
            "Request header fields larger than %d bytes (MAX_HEADER_BYTES): closing.",
            self.max_header_bytes,
        )
        if self._answerable():
            content = [b"HTTP/1.1 431 Request Header Fields Too Large\r\n"]
            for name, value in self.server_state.default_headers:
                content += [name, b": ", value, b"\r\n"]
            content += [
                b"content-type: application/json\r\n",
                b"content-length: %d\r\n" % len(TOO_LARGE_BODY),
                b"connection: close\r\n\r\n",
                TOO_LARGE_BODY,
            ]
            self.transport.write(b"".join(content))
        self.transport.close()

    def _answerable(self) -> bool:
        """The 431 would be the next bytes out and answer the request that is too large: no
        earlier response is being written or waits its turn (a pipelined request)."""
        if self.pipeline:
            return False
        cycle: RequestResponseCycle | None = self.cycle
        if cycle is None or cycle.response_complete:
            return True
        # The current request's own trailers are too large: answerable until the app answers.
        return self._in_message and not cycle.response_started
