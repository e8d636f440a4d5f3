"""Fake PostgreSQL servers for the launcher's tests: a proxy that records every byte it forwards,
and a server that plays one hostile behaviour on every connection.

The hostile replies are written byte by byte from the protocol's documented message layouts,
since no server library would send them: what a client must survive, not a PostgreSQL.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable


class RecordingProxy:
    """A TCP proxy to the cluster that keeps every byte it forwards, both ways."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._lock = threading.Lock()
        self._chunks: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def recorded(self) -> bytes:
        with self._lock:
            return b"".join(self._chunks)

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self._server.accept()
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
                for source, sink in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                with self._lock:
                    self._chunks.append(data)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)
            source.close()  # each socket is the source of exactly one pipe

    def close(self) -> None:
        self._server.close()


SSL_REQUEST, GSSENC_REQUEST = 80877103, 80877104


def message(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("!I", len(payload) + 4) + payload


def _receive(connection: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the client left")
        data += chunk
    return data


def _startup(connection: socket.socket) -> None:
    """Read the client's opening; refuse TLS and GSS encryption as a plain server would."""
    while True:
        (length,) = struct.unpack("!I", _receive(connection, 4))
        body = _receive(connection, length - 4)
        if struct.unpack("!I", body[:4])[0] in (SSL_REQUEST, GSSENC_REQUEST):
            connection.sendall(b"N")
            continue
        return


def _client_message(connection: socket.socket) -> bytes:
    _kind, length = struct.unpack("!cI", _receive(connection, 5))
    return _receive(connection, length - 4)


def _scram_challenge(connection: socket.socket, iterations: int) -> None:
    connection.sendall(message(b"R", struct.pack("!I", 10) + b"SCRAM-SHA-256\0\0"))
    first = _client_message(connection).decode("latin-1")
    nonce = first.split("r=", 1)[1].split(",", 1)[0].rstrip("\0")
    salt = base64.b64encode(b"0123456789abcdef").decode()
    challenge = f"r={nonce}fakeserver,s={salt},i={iterations}".encode()
    connection.sendall(message(b"R", struct.pack("!I", 11) + challenge))


def _hold(connection: socket.socket) -> None:
    while connection.recv(4096):
        pass


def never_answers(connection: socket.socket) -> None:
    """Accept, then say nothing at all."""
    _hold(connection)


def drips(connection: socket.socket) -> None:
    """Answer the startup one byte every 1.5 s (AuthenticationOk, over and over)."""
    _startup(connection)
    for byte in message(b"R", struct.pack("!I", 0)) * 100:
        connection.sendall(bytes([byte]))
        time.sleep(1.5)


def scram_iterations_2147483647(connection: socket.socket) -> None:
    """A SCRAM challenge that asks the client for 2^31 - 1 rounds of hashing."""
    _startup(connection)
    _scram_challenge(connection, 2147483647)
    _hold(connection)


def header_claims_4_gib(connection: socket.socket) -> None:
    """A message header whose length claims 4 GiB, and then a few bytes."""
    _startup(connection)
    connection.sendall(b"R" + struct.pack("!I", 0xFFFFFFFF) + b"\0" * 64)
    _hold(connection)


def garbage(connection: socket.socket) -> None:
    """Bytes no PostgreSQL server would send (an HTTP error, binary noise)."""
    _startup(connection)
    connection.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n\xff\xfe\x00garbage" * 8)
    _hold(connection)


def authentication_ok_without_scram_final(connection: socket.socket) -> None:
    """An impostor that knows no password: it skips the proof that it knew the verifier."""
    _startup(connection)
    _scram_challenge(connection, 4096)
    _client_message(connection)  # the client's proof
    connection.sendall(
        message(b"R", struct.pack("!I", 0))
        + message(b"S", b"server_version\x0015.0\x00")
        + message(b"K", struct.pack("!II", 1234, 5678))
        + message(b"Z", b"I")
    )
    _hold(connection)


HOSTILE = {
    behaviour.__name__: behaviour
    for behaviour in (
        never_answers,
        drips,
        scram_iterations_2147483647,
        header_claims_4_gib,
        garbage,
        authentication_ok_without_scram_final,
    )
}


class HostileServer:
    """A TCP server that plays one hostile behaviour on every connection."""

    def __init__(self, behaviour: Callable[[socket.socket], None]) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self.connected = threading.Event()
        self._behaviour = behaviour
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, _ = self._server.accept()
                self.connected.set()
                threading.Thread(target=self._play, args=(connection,), daemon=True).start()

    def _play(self, connection: socket.socket) -> None:
        with connection, contextlib.suppress(OSError, ConnectionError):
            self._behaviour(connection)

    def close(self) -> None:
        self._server.close()
