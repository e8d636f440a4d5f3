"""The lock's key and its waiting policy (lock/core.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic_prestart.lock.core import LockTimeout, Waiting, advisory_lock_key

ROOT = Path("/srv/app")


def test_waiting_gives_up_at_its_deadline() -> None:
    """The lock's policy never sleeps past the deadline and then raises LockTimeout."""
    waiting = Waiting("schema s", timeout=0.0)
    with pytest.raises(LockTimeout, match="held by pid 7"):
        waiting.pause(lambda: "pid 7")
    assert Waiting("schema s", timeout=60).pause(lambda: "pid 7") <= 0.1


def test_lock_keys_are_stable_per_database_and_schema() -> None:
    """The same database and schema give the same 63-bit key, in every process."""
    key = advisory_lock_key("app", "test_app")
    assert key == advisory_lock_key("app", "test_app")
    assert 0 <= key < 2**63
    assert key != advisory_lock_key("app", "public")
