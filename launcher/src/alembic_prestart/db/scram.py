"""A bound on the password hashing a server can demand of asyncpg.

SCRAM-SHA-256 lets the server choose how many PBKDF2 rounds the client spends on the password
(PostgreSQL's default is 4,096; its `scram_iterations` allows up to 2^31 - 1). asyncpg hashes
in one C call on the thread that connects, with the event loop stopped and no way to interrupt
it: a hostile or broken server asking for 2^31 - 1 rounds freezes a service worker's loop for
many minutes (its health route, its other requests, its SIGTERM), and keeps a core busy.

asyncpg looks `hashlib` up in its protocol module at each handshake. `bound_password_hashing()`
gives it a stand-in whose `pbkdf2_hmac` refuses more than MAX_SCRAM_ITERATIONS rounds before
hashing anything; asyncpg reports the refusal as an authentication error naming the count, and
the connect fails at once. Everything else is the real hashlib. If a release of asyncpg hashes
elsewhere, the stand-in is simply not consulted (tests/alembic_prestart/db/test_scram.py
notices).
"""

from __future__ import annotations

import hashlib
import types
from typing import Any

# About 0.3 s of one core here: well above any iteration count a real deployment chooses
# (OWASP's 2023 advice for PBKDF2-SHA256 is 600,000), far below what freezes a worker.
MAX_SCRAM_ITERATIONS = 1_000_000

_REFUSAL = "rounds of SCRAM password hashing"


class CostlyHashRefused(Exception):
    """The server asked for more password-hashing rounds than MAX_SCRAM_ITERATIONS."""

    def __init__(self, iterations: int) -> None:
        super().__init__(
            f"the server asked for {iterations:,} {_REFUSAL}; more than "
            f"{MAX_SCRAM_ITERATIONS:,} is refused (a hostile or misconfigured server)"
        )
        self.iterations = iterations


class _BoundedHashlib(types.ModuleType):
    """hashlib, except that pbkdf2_hmac refuses an unbounded iteration count."""

    def __init__(self) -> None:
        super().__init__("hashlib")

    def __getattr__(self, name: str) -> Any:
        return getattr(hashlib, name)

    @staticmethod
    def pbkdf2_hmac(
        hash_name: str, password: bytes, salt: bytes, iterations: int, dklen: int | None = None
    ) -> bytes:
        if iterations > MAX_SCRAM_ITERATIONS:
            raise CostlyHashRefused(iterations)
        return hashlib.pbkdf2_hmac(hash_name, password, salt, iterations, dklen)


def bound_password_hashing() -> None:
    """Install the bound in asyncpg (idempotent; a no-op without asyncpg)."""
    try:
        from asyncpg.protocol import protocol
    except ImportError:  # pragma: no cover - SQLite-only installs
        return
    if not isinstance(getattr(protocol, "hashlib", None), _BoundedHashlib):
        protocol.hashlib = _BoundedHashlib()


def refused_iterations(error: BaseException) -> CostlyHashRefused | None:
    """The refusal behind a failed connect, if that is what it was."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, CostlyHashRefused):
            return cause
        cause = cause.__cause__
    return None
