"""The bound on SCRAM password hashing (db/scram.py), against a fake server asking for it."""

from __future__ import annotations

import asyncio
import time

import pytest
from alembic_prestart.db.scram import (
    MAX_SCRAM_ITERATIONS,
    CostlyHashRefused,
    bound_password_hashing,
    refused_iterations,
)

from tests.support.fake_servers import HOSTILE, HostileServer


def _connect_error(behaviour: str) -> tuple[BaseException | None, float]:
    """How asyncpg's connect to the fake server ended (None: it connected), and when."""
    import asyncpg

    async def connect() -> None:
        connection = await asyncpg.connect(
            f"postgresql://u:pw@127.0.0.1:{server.port}/db", timeout=10
        )
        connection.terminate()

    server = HostileServer(HOSTILE[behaviour])
    started = time.monotonic()
    try:
        asyncio.run(connect())
    except Exception as error:
        return error, time.monotonic() - started
    finally:
        server.close()
    return None, time.monotonic() - started


def test_a_costly_hash_is_refused_before_any_hashing() -> None:
    """2^31 - 1 rounds asked: the connect fails at once, naming the count (asyncpg itself
    consults the bound: a release that hashed elsewhere would hash for minutes here)."""
    bound_password_hashing()
    error, elapsed = _connect_error("scram_iterations_2147483647")
    assert error is not None
    refused = refused_iterations(error)
    assert refused is not None, repr(error)
    assert refused.iterations == 2_147_483_647
    assert "2,147,483,647 rounds of SCRAM password hashing" in str(refused)
    assert elapsed < 2.0


def test_an_ordinary_count_is_hashed() -> None:
    """4,096 rounds (PostgreSQL's default): hashed, and the handshake goes on."""
    bound_password_hashing()
    error, _ = _connect_error("authentication_ok_without_scram_final")
    assert error is None or refused_iterations(error) is None, repr(error)


def test_installing_twice_keeps_one_bound() -> None:
    from asyncpg.protocol import protocol

    bound_password_hashing()
    first = protocol.hashlib
    bound_password_hashing()
    assert protocol.hashlib is first
    assert protocol.hashlib.sha256 is __import__("hashlib").sha256  # the rest is hashlib
    with pytest.raises(CostlyHashRefused):
        protocol.hashlib.pbkdf2_hmac("sha256", b"p", b"s", MAX_SCRAM_ITERATIONS + 1)
    assert protocol.hashlib.pbkdf2_hmac("sha256", b"p", b"s", 1) == __import__(
        "hashlib"
    ).pbkdf2_hmac("sha256", b"p", b"s", 1)
