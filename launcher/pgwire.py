"""Read alembic_version from PostgreSQL with the standard library alone.

The fast path of `serve` needs one tiny query. Importing asyncio and asyncpg for it costs more
than the whole query (about 60 ms against a few ms), so this speaks the wire protocol (v3)
directly: startup, trust / cleartext / MD5 / SCRAM-SHA-256 authentication, one simple query.
It is an optimisation only: anything it does not handle (TLS, Unix sockets, other auth, any
error) raises Unsupported, and the caller asks asyncpg instead, which gives the authoritative
answer and the error classification.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import socket
import struct
from urllib.parse import parse_qs, urlsplit

from service.database_url import DatabaseURL

PROTOCOL_VERSION = 196608  # 3.0
_UNDEFINED_TABLE = b"42P01"
_INVALID_SCHEMA = b"3F000"


class Unsupported(Exception):
    """Not something this client handles; use the full driver."""


class QueryError(Exception):
    """The server refused a statement."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def connect(url: DatabaseURL, *, timeout: float, application_name: str) -> Session:
    """An open, authenticated session; close it (or use `with`) when done."""
    query = parse_qs(urlsplit(url.url).query)
    if query or not url.username or not url.database or url.host.startswith("/"):
        raise Unsupported("TLS options, Unix sockets or implicit user")
    try:
        sock = socket.create_connection((url.host, url.port), timeout=timeout)
    except OSError as error:
        raise Unsupported(str(error)) from None
    session = Session(sock)
    try:
        session.start(url, application_name)
    except (OSError, struct.error, ValueError, KeyError) as error:
        session.close()
        raise Unsupported(str(error)) from None
    except BaseException:
        session.close()
        raise
    return session


def read_versions(
    url: DatabaseURL, *, schema: str, timeout: float, application_name: str
) -> tuple[str, ...] | None:
    """The rows of <schema>.alembic_version (None if there is no such table)."""
    with connect(url, timeout=timeout, application_name=application_name) as session:
        return session.versions(schema)


class Session:
    """One connection speaking the simple query protocol; every statement autocommits."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Terminate politely; the server drops a session lock with the session."""
        if self.sock.fileno() == -1:
            return  # closed already
        with contextlib.suppress(OSError):
            self._send(b"X", b"")
        self.sock.close()

    def _send(self, kind: bytes, payload: bytes) -> None:
        self.sock.sendall(kind + struct.pack("!I", len(payload) + 4) + payload)

    def _read_exact(self, size: int) -> bytes:
        while len(self.buffer) < size:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Unsupported("connection closed by the server")
            self.buffer += chunk
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def _receive(self) -> tuple[bytes, bytes]:
        kind = self._read_exact(1)
        (length,) = struct.unpack("!I", self._read_exact(4))
        return kind, self._read_exact(length - 4)

    def start(self, url: DatabaseURL, application_name: str) -> None:
        params = {
            "user": url.username or "",
            "database": url.database,
            "application_name": application_name,
            "client_encoding": "UTF8",
        }
        body = struct.pack("!I", PROTOCOL_VERSION)
        body += b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in params.items())
        body += b"\0"
        self.sock.sendall(struct.pack("!I", len(body) + 4) + body)
        self._authenticate(url)
        while True:  # ParameterStatus, BackendKeyData, ... until ReadyForQuery
            kind, payload = self._receive()
            if kind == b"Z":
                return
            if kind == b"E":
                raise Unsupported(_error_code(payload).decode())

    def _authenticate(self, url: DatabaseURL) -> None:
        password = (url.password or "").encode()
        user = (url.username or "").encode()
        scram: _Scram | None = None
        while True:
            kind, payload = self._receive()
            if kind == b"E":
                raise Unsupported(_error_code(payload).decode())
            if kind != b"R":
                raise Unsupported(f"unexpected message {kind!r}")
            (method,) = struct.unpack("!I", payload[:4])
            if method == 0:  # AuthenticationOk
                return
            if method == 3 and password:  # cleartext
                self._send(b"p", password + b"\0")
            elif method == 5 and password:  # MD5
                inner = hashlib.md5(password + user).hexdigest().encode()
                digest = hashlib.md5(inner + payload[4:8]).hexdigest().encode()
                self._send(b"p", b"md5" + digest + b"\0")
            elif method == 10 and password and b"SCRAM-SHA-256\0" in payload[4:]:
                scram = _Scram(password)
                first = scram.client_first()
                self._send(b"p", b"SCRAM-SHA-256\0" + struct.pack("!I", len(first)) + first)
            elif method == 11 and scram is not None:  # SASLContinue
                self._send(b"p", scram.client_final(payload[4:]))
            elif method == 12 and scram is not None:  # SASLFinal
                scram.verify_server(payload[4:])
            else:
                raise Unsupported(f"authentication method {method}")

    def query(self, sql: str) -> list[tuple[str | None, ...]]:
        """Run one statement; its rows as text. A server error raises QueryError."""
        try:
            return self._query(sql)
        except (OSError, struct.error, ValueError) as error:
            raise Unsupported(str(error)) from None

    def _query(self, sql: str) -> list[tuple[str | None, ...]]:
        self._send(b"Q", sql.encode() + b"\0")
        rows: list[tuple[str | None, ...]] = []
        error: bytes | None = None
        while True:
            kind, payload = self._receive()
            if kind == b"D":
                rows.append(_data_row(payload))
            elif kind == b"E":
                error = _error_code(payload)
            elif kind == b"Z":  # ReadyForQuery: the statement is over
                if error is not None:
                    raise QueryError(error.decode())
                return rows

    def versions(self, schema: str) -> tuple[str, ...] | None:
        """The rows of <schema>.alembic_version, None when the table does not exist."""
        try:
            rows = self.query(f'SELECT version_num FROM "{schema}".alembic_version')
        except QueryError as error:
            if error.sqlstate.encode() in (_UNDEFINED_TABLE, _INVALID_SCHEMA):
                return None
            raise Unsupported(error.sqlstate) from None
        return tuple(sorted(str(row[0]) for row in rows))


def _data_row(payload: bytes) -> tuple[str | None, ...]:
    (count,) = struct.unpack("!H", payload[:2])
    values: list[str | None] = []
    offset = 2
    for _ in range(count):
        (size,) = struct.unpack("!i", payload[offset : offset + 4])
        offset += 4
        if size < 0:
            values.append(None)
        else:
            values.append(payload[offset : offset + size].decode())
            offset += size
    return tuple(values)


def _error_code(payload: bytes) -> bytes:
    for field in payload.split(b"\0"):
        if field[:1] == b"C":
            return field[1:]
    return b"?"


class _Scram:
    """SCRAM-SHA-256 (RFC 5802/7677) without channel binding, as libpq does over plain TCP."""

    def __init__(self, password: bytes) -> None:
        self.password = password
        self.nonce = base64.b64encode(os.urandom(18))
        self.first_bare = b"n=,r=" + self.nonce
        self.server_signature = b""

    def client_first(self) -> bytes:
        return b"n,," + self.first_bare

    def client_final(self, server_first: bytes) -> bytes:
        fields = dict(item.split(b"=", 1) for item in server_first.split(b","))
        nonce, salt, iterations = fields[b"r"], base64.b64decode(fields[b"s"]), int(fields[b"i"])
        if not nonce.startswith(self.nonce):
            raise Unsupported("SCRAM nonce mismatch")
        salted = hashlib.pbkdf2_hmac("sha256", self.password, salt, iterations)
        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
        stored_key = hashlib.sha256(client_key).digest()
        final_bare = b"c=biws,r=" + nonce
        auth_message = self.first_bare + b"," + server_first + b"," + final_bare
        signature = hmac.new(stored_key, auth_message, "sha256").digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = hmac.new(salted, b"Server Key", "sha256").digest()
        self.server_signature = hmac.new(server_key, auth_message, "sha256").digest()
        return final_bare + b",p=" + base64.b64encode(proof)

    def verify_server(self, server_final: bytes) -> None:
        fields = dict(item.split(b"=", 1) for item in server_final.split(b","))
        if not hmac.compare_digest(base64.b64decode(fields[b"v"]), self.server_signature):
            raise Unsupported("SCRAM server signature mismatch")
