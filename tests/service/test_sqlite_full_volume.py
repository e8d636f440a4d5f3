"""SQLite on a volume that fills up: writes answer 507 while it is full, and once space frees
the WAL is checkpointed and truncated instead of keeping the space (a real tmpfs as small as a
tiny container volume, smaller than SQLite's auto-checkpoint threshold)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.main import create_app
from service.settings import get_settings
from tests.support.processes import run_alembic
from tests.support.urls import parse_database_url

pytestmark = pytest.mark.slow


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    """A 1.5 MB tmpfs: a real file system that fills up (needs root, as CI runs)."""
    volume = tmp_path / "volume"
    volume.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1536k", "tmpfs", str(volume)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        yield volume
    finally:
        subprocess.run(["umount", "-l", str(volume)], check=False)


def test_a_full_volume_is_507_and_the_wal_is_given_back_when_space_frees(
    small_volume: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writes until the volume is full (507), free space, write again: 201, and the WAL file is
    truncated, every acknowledged row still there."""
    url = parse_database_url(f"sqlite:///{small_volume / 'app.db'}")
    assert run_alembic(url, "upgrade", "head").returncode == 0
    filler = small_volume / "filler"
    filler.write_bytes(b"\0" * 700 * 1024)
    monkeypatch.setenv("DATABASE_URL", url.url)
    get_settings.cache_clear()
    wal = small_volume / "app.db-wal"
    try:
        with TestClient(create_app(), raise_server_exceptions=False) as client:
            created = 0
            for number in range(5000):
                body = {"name": "x" * 100, "email": f"user{number}@example.com"}
                response = client.post("/users", json=body)
                if response.status_code == 507:
                    break
                assert response.status_code == 201, response.text
                created += 1
            assert response.status_code == 507, "the volume never filled"
            filler.unlink()  # the operator frees space
            after = client.post("/users", json={"name": "after", "email": "after@example.com"})
            assert after.status_code == 201, after.text
            assert not wal.exists() or wal.stat().st_size == 0
            listed = client.get("/users", params={"limit": 100})
            assert listed.status_code == 200
    finally:
        get_settings.cache_clear()
    import sqlite3

    with sqlite3.connect(small_volume / "app.db") as connection:
        [(count,)] = connection.execute("SELECT count(*) FROM users").fetchall()
    assert count == created + 1
