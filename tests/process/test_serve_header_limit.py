"""Request heads are bounded (MAX_HEADER_BYTES): a too-large head is refused at the limit, under
httptools with 431 and under h11 with uvicorn's 400, while other connections keep being served."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.processes import Launcher, cmdline, http_status, launcher_env
from tests.support.project import free_port
from tests.support.urls import DatabaseURL, parse_database_url

# Real processes, servers or clusters: left out of the quick run (-m "not slow").
pytestmark = pytest.mark.slow

DEFAULT_LIMIT = 64 * 1024
SMALL_LIMIT = 4096
HEAD_START = b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Big: "
MB = 1024 * 1024


def head_of(size: int, path: str = "/healthz") -> bytes:
    """A complete GET request head of exactly `size` bytes (request line to the blank line)."""
    start = f"GET {path} HTTP/1.1\r\nHost: test\r\nX-Pad: ".encode()
    end = b"\r\n\r\n"
    return start + b"a" * (size - len(start) - len(end)) + end


class Client:
    """One connection: raw bytes out, whole responses in (a length, or up to the close)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.pending = b""  # received, not yet read as a response

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def status(self) -> int:
        """The status of the next response, read whole."""
        while b"\r\n\r\n" not in self.pending:
            self._receive()
        head, _, self.pending = self.pending.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        fields = dict(line.lower().split(": ", 1) for line in lines[1:])
        if "content-length" in fields:
            length = int(fields["content-length"])
            while len(self.pending) < length:
                self._receive()
            self.pending = self.pending[length:]
        else:  # the body ends with the connection (h11's 400)
            with contextlib.suppress(ConnectionError):
                while True:
                    self._receive()
            self.pending = b""
        return int(lines[0].split()[1])

    def closed_by_peer(self) -> bool:
        """The server closed the connection (end of file or a reset), nothing more to read."""
        try:
            return not self.pending and self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def _receive(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError(f"closed by the server; unread: {self.pending!r}")
        self.pending += data


def environment(url: DatabaseURL, **extra: str) -> dict[str, str]:
    """The launcher's environment: MAX_HEADER_BYTES only when a test sets it."""
    env = launcher_env(url)
    env.pop("MAX_HEADER_BYTES", None)
    return {**env, **extra}


def serve(
    url: DatabaseURL, log: Path, *args: str, skip: bool = True, **env: str
) -> tuple[Launcher, int]:
    """A launcher serving on a free port (by default without migrating): it and its port."""
    port = free_port()
    options = ["--port", str(port), *(["--skip-migrations"] if skip else []), *args]
    launcher = Launcher(options, env=environment(url, **env), log_path=log)
    launcher.wait_http(port)
    return launcher, port


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> DatabaseURL:
    """One SQLite file at head for the module: the servers below skip the migration."""
    folder = tmp_path_factory.mktemp("header-limit")
    url = parse_database_url(f"sqlite:///{folder / 'app.db'}")
    launcher, _port = serve(url, folder / "migrate.log", skip=False)
    launcher.stop()
    return url


@pytest.fixture(scope="module")
def server(
    migrated: DatabaseURL, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Launcher, int]]:
    """The launcher with every default, serving for the whole module."""
    launcher, port = serve(migrated, tmp_path_factory.mktemp("server") / "out")
    yield launcher, port
    launcher.stop()


@pytest.fixture(scope="module")
def small_limit(
    migrated: DatabaseURL, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Launcher, int]]:
    """The launcher with MAX_HEADER_BYTES=4096, below the app's own body limit."""
    log = tmp_path_factory.mktemp("small-limit") / "out"
    launcher, port = serve(migrated, log, MAX_HEADER_BYTES=str(SMALL_LIMIT))
    yield launcher, port
    launcher.stop()


@dataclass
class Flood:
    """One client sending a huge header in chunks, reading whatever comes back meanwhile."""

    port: int
    total: int
    chunk: int
    pause: float
    sent: int = 0
    answer: bytes = b""
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port)) as sock:
            sock.settimeout(30)
            reader = threading.Thread(target=self._read, args=(sock,))
            reader.start()
            try:
                sock.sendall(HEAD_START)
                while self.sent < self.total and not self.stop.is_set():
                    sock.sendall(b"a" * self.chunk)
                    self.sent += self.chunk
                    time.sleep(self.pause)
            except OSError:
                pass  # the server closed the connection: what it answered is in self.answer
            reader.join()

    def _read(self, sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := sock.recv(65536):
                self.answer += data
        self.stop.set()


@pytest.mark.parametrize(("chunk", "pause"), [(MB, 0.0), (1024, 0.02)], ids=["fast", "slow"])
def test_a_huge_header_gets_431_while_others_are_served(
    server: tuple[Launcher, int], chunk: int, pause: float
) -> None:
    """A 64 MB header, sent fast or slowly: 431 and closed; meanwhile /healthz answers at once."""
    launcher, port = server
    flood = Flood(port, total=64 * MB, chunk=chunk, pause=pause)
    thread = threading.Thread(target=flood.run)
    thread.start()
    statuses = []
    # Each probe may take its own 2 s at most (http_status's timeout): a stalled loop fails it.
    while thread.is_alive() or len(statuses) < 5:
        statuses.append(http_status(port))
        time.sleep(0.05)
    thread.join()
    assert flood.answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert flood.answer.endswith(b'\r\n\r\n{"detail":"Request Header Fields Too Large"}')
    assert set(statuses) == {200}, statuses
    # The server stopped reading at the limit: what the client got rid of fits in buffers.
    assert flood.sent < 32 * MB
    assert "larger than 65536 bytes (MAX_HEADER_BYTES)" in launcher.output


def test_a_head_of_exactly_the_limit_is_served(server: tuple[Launcher, int]) -> None:
    """The limit counts the request line and headers: 64 KiB passes, one byte more is 431."""
    _launcher, port = server
    with Client(port) as client:
        client.send(head_of(DEFAULT_LIMIT))
        assert client.status() == 200
        # The count starts again with each request on a kept-alive connection.
        client.send(head_of(DEFAULT_LIMIT))
        assert client.status() == 200
        client.send(head_of(DEFAULT_LIMIT + 1))
        assert client.status() == 431
        assert client.closed_by_peer()


def test_pipelined_requests_are_counted_each_on_its_own(server: tuple[Launcher, int]) -> None:
    """Two 40 KB heads sent at once (80 KB together, over the limit): both are answered 200."""
    _launcher, port = server
    with Client(port) as client:
        client.send(head_of(40_000) + head_of(40_000))
        assert client.status() == 200
        assert client.status() == 200


def test_an_oversized_head_behind_a_pipelined_request_closes(server: tuple[Launcher, int]) -> None:
    """Past the limit behind a request: it is answered first or not at all, never with a 431."""
    _launcher, port = server
    with Client(port) as client:
        with contextlib.suppress(OSError):
            client.send(head_of(100) + HEAD_START + b"a" * (DEFAULT_LIMIT * 2))
        received = b""
        with contextlib.suppress(OSError):
            while data := client.sock.recv(65536):
                received += data
    # Answered before the rest came in (then 431 follows), or not yet (then nothing): both fine.
    assert received == b"" or received.startswith(b"HTTP/1.1 200 OK\r\n"), received
    assert http_status(port) == 200


def test_oversized_trailers_get_431(server: tuple[Launcher, int]) -> None:
    """Trailers of a chunked body are header fields too: past the limit, 431 and closed."""
    _launcher, port = server
    with Client(port) as client:
        client.send(
            b"POST /users HTTP/1.1\r\nHost: test\r\ncontent-type: application/json\r\n"
            b"transfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\nX-Trailer: "
        )
        with contextlib.suppress(OSError):
            for _ in range(16):
                client.send(b"a" * DEFAULT_LIMIT)
        assert client.status() == 431
        assert client.closed_by_peer()
    assert http_status(port) == 200


def test_the_limit_is_set_by_max_header_bytes(small_limit: tuple[Launcher, int]) -> None:
    """MAX_HEADER_BYTES=4096: a 4096-byte head is served, a 4097-byte one gets 431."""
    _launcher, port = small_limit
    for size, expected in ((4096, 200), (4097, 431)):
        with Client(port) as client:
            client.send(head_of(size))
            assert client.status() == expected, size


def test_a_body_is_not_counted(small_limit: tuple[Launcher, int]) -> None:
    """A body five times the limit, with a length or chunked, reaches the app."""
    _launcher, port = small_limit
    padding = "x" * (SMALL_LIMIT * 5)
    body = f'{{"name":"A","email":"big@example.com","padding":"{padding}"}}'.encode()
    head = b"POST /users HTTP/1.1\r\nHost: test\r\ncontent-type: application/json\r\n"
    with Client(port) as client:
        client.send(head + b"content-length: %d\r\n\r\n" % len(body) + body)
        assert client.status() in (201, 409, 422)
        client.send(head + b"transfer-encoding: chunked\r\n\r\n")
        for start in range(0, len(body), 1000):
            piece = body[start : start + 1000]
            client.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        client.send(b"0\r\n\r\n")
        assert client.status() in (201, 409, 422)


def test_h11_gets_the_same_limit(migrated: DatabaseURL, tmp_path: Path) -> None:
    """Under `-- --http h11` the same MAX_HEADER_BYTES bounds the head (h11 answers 400)."""
    launcher, port = serve(
        migrated, tmp_path / "out", "--", "--http", "h11", MAX_HEADER_BYTES="4096"
    )
    try:
        assert "--h11-max-incomplete-event-size 4096 " in cmdline(launcher.pid)
        with Client(port) as client:
            client.send(head_of(3000))
            assert client.status() == 200
        with Client(port) as client:
            client.send(HEAD_START + b"a" * 8192)
            assert client.status() == 400
            assert client.closed_by_peer()
    finally:
        launcher.stop()


def test_without_httptools_h11_serves_under_the_same_limit(
    migrated: DatabaseURL, tmp_path: Path
) -> None:
    """httptools missing: uvicorn picks h11, h11 bounds the head, and one info line (no
    warning: nothing is unlimited) says so."""
    shadow = tmp_path / "shadow" / "httptools"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('no httptools here')\n")
    launcher, port = serve(migrated, tmp_path / "out", PYTHONPATH=str(shadow.parent))
    try:
        assert "size-limited" not in launcher.output
        notes = [line for line in launcher.output.splitlines() if "httptools" in line]
        assert len(notes) == 1, launcher.output
        assert " INFO " in notes[0] and "no httptools here" in notes[0] and "h11" in notes[0]
        with Client(port) as client:
            client.send(HEAD_START + b"a" * (DEFAULT_LIMIT + 1024))
            assert client.status() == 400
    finally:
        launcher.stop()
