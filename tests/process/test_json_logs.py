"""--log-format json: the launcher, the migration child and uvicorn, one object per line."""

import json
from pathlib import Path

import pytest

from tests.support.processes import Launcher, http_json, launcher_env
from tests.support.urls import DatabaseURL

# Real processes, servers or clusters: left out of the quick run (-m "not slow").
pytestmark = pytest.mark.slow

FIELDS = {"time", "level", "logger", "message", "phase"}


def test_every_line_is_a_json_object_from_all_three_sources(
    sqlite_url: DatabaseURL, port: int, tmp_path: Path
) -> None:
    """Each output line parses as JSON with time, level, logger, message and phase."""
    launcher = Launcher(
        ["--port", str(port), "--log-format", "json"],
        env=launcher_env(sqlite_url),
        log_path=tmp_path / "out",
    )
    try:
        launcher.wait_http(port)
        http_json(port, "GET", "/users/1")
    finally:
        launcher.stop()
    entries = []
    for line in launcher.output.splitlines():
        entry = json.loads(line)
        assert set(entry) >= FIELDS, line
        entries.append(entry)
    loggers = {entry["logger"] for entry in entries}
    expected = {"alembic_prestart", "alembic.runtime.migration", "uvicorn.error", "uvicorn.access"}
    assert expected <= loggers
    phases = [entry["phase"] for entry in entries]
    assert phases.index("migrating") < phases.index("starting-server") < phases.index("serving")
    access = [e for e in entries if e["logger"] == "uvicorn.access"]
    assert any("GET /users/1" in e["message"] and "404" in e["message"] for e in access)
    migrated = [e for e in entries if e["logger"] == "alembic.runtime.migration"]
    assert any("Running upgrade" in e["message"] and e["level"] == "INFO" for e in migrated)


def test_json_errors_stay_json(tmp_path: Path) -> None:
    """A configuration error in JSON mode is still one JSON object."""
    env = {**launcher_env(None), "DATABASE_URL": "mysql://x/y"}
    launcher = Launcher(["migrate", "--log-format", "json"], env=env, log_path=tmp_path / "out")
    assert launcher.wait() == 78
    (line,) = launcher.output.splitlines()
    assert json.loads(line)["level"] == "ERROR"
