"""A rolling deploy on one machine: release N keeps serving while release N+1 migrates and
serves; a destructive revision in release N+2 is caught before it runs."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.support.processes import Launcher, http_json, http_status, launcher_env
from tests.support.project import copy_project, free_port
from tests.support.revisions import HEAD, add_revision
from tests.support.state import applied_versions
from tests.support.urls import DatabaseURL

# Real processes, servers or clusters: left out of the quick run (-m "not slow").
pytestmark = pytest.mark.slow

ADD_MARKER = 'op.add_column("users", sa.Column("test_marker", sa.String(50), nullable=True))'
DROP_MARKER = 'op.drop_column("users", "test_marker")'


class RequestLoop(threading.Thread):
    """A steady, bounded loop of reads against one release: every status it got, by route."""

    def __init__(self, port: int, user_id: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.user_id = user_id
        self.statuses: dict[str, Counter[int | None]] = {"users": Counter(), "readyz": Counter()}
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.statuses["users"][http_status(self.port, f"/users/{self.user_id}")] += 1
            self.statuses["readyz"][http_status(self.port, "/readyz")] += 1
            time.sleep(0.02)

    def stop(self) -> dict[str, Counter[int | None]]:
        self._halt.set()
        self.join(10)
        return self.statuses


def _release(root: Path, url: DatabaseURL, tmp_path: Path, name: str, port: int) -> Launcher:
    return Launcher(
        ["--port", str(port)], env=launcher_env(url), root=root, log_path=tmp_path / name
    )


def test_old_release_keeps_serving_while_the_new_one_migrates(
    postgres_url: DatabaseURL, tmp_path: Path
) -> None:
    """Release N answers 200 on /users and /readyz throughout N+1's migration: no 5xx."""
    release_n = copy_project(tmp_path / "release-n")
    release_n1 = copy_project(tmp_path / "release-n1")
    # No sleep inside it: a revision holds its table lock until it commits, and a slow one
    # would stall release N's reads (that is what the safety analysis and lock_timeout
    # are for).
    add_revision(release_n1, "0002", HEAD, ADD_MARKER)

    port_n = free_port()
    old = _release(release_n, postgres_url, tmp_path, "n.out", port_n)
    new: Launcher | None = None
    try:
        assert old.wait_http(port_n, "/readyz", timeout=60) == 200
        status, body = http_json(
            port_n,
            "POST",
            "/users",
            json.dumps({"name": "Ada", "email": "ada@example.com"}).encode(),
        )
        assert status == 201, body
        loop = RequestLoop(port_n, json.loads(body)["id"])
        loop.start()
        time.sleep(0.5)
        port_n1 = free_port()
        new = _release(release_n1, postgres_url, tmp_path, "n1.out", port_n1)
        assert new.wait_http(port_n1, "/readyz", timeout=90) == 200, new.output
        time.sleep(0.5)
        statuses = loop.stop()
    finally:
        old.stop()
        if new is not None:
            new.stop()
    assert applied_versions(postgres_url) == ["0002"]
    assert set(statuses["users"]) == {200}, statuses
    assert set(statuses["readyz"]) == {200}, statuses
    assert sum(statuses["users"].values()) >= 20


def test_a_contract_step_is_reported_and_refused_under_strict(
    postgres_url: DatabaseURL, tmp_path: Path
) -> None:
    """Release N+2 drops a column N+1 may still read: `check --lint` names it, strict refuses."""
    release = copy_project(tmp_path / "release-n2")
    add_revision(release, "0002", HEAD, ADD_MARKER)
    migrate = Launcher(
        ["migrate"], env=launcher_env(postgres_url), root=release, log_path=tmp_path / "1"
    )
    assert migrate.wait() == 0, migrate.output
    add_revision(release, "0003", "0002", DROP_MARKER)
    check = Launcher(
        ["check", "--lint"], env=launcher_env(postgres_url), root=release, log_path=tmp_path / "2"
    )
    assert check.wait() == 5
    assert "0003" in check.output and "drop-column" in check.output
    strict = Launcher(
        ["migrate", "--lint", "strict"],
        env=launcher_env(postgres_url),
        root=release,
        log_path=tmp_path / "3",
    )
    assert strict.wait() == 5
    assert applied_versions(postgres_url) == ["0002"]
