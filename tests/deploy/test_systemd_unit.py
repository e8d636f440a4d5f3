"""deploy/supervisor.service: systemd accepts it, and it says what the launcher needs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.deploy_files import (
    APP_ROOT,
    UNIT,
    require_tool,
    timespan_seconds,
    unit_value,
    unit_values,
)
from tests.support.urls import PROJECT_ROOT

# Real processes, servers or clusters: left out of the quick run (-m "not slow").
pytestmark = pytest.mark.slow

# The launcher's defaults: --db-wait 30 s, --migration-timeout 600 s.
LONGEST_START_SECONDS = 30 + 600


def systemd_analyze() -> str:
    return require_tool("systemd-analyze", "Debian: apt-get install -y systemd")


def local_copy(tmp_path: Path, text: str | None = None) -> Path:
    """The unit with /srv/app pointing at this checkout and its venv, so that every path
    systemd-analyze checks exists here."""
    text = UNIT.read_text() if text is None else text
    text = text.replace(f"{APP_ROOT}/.venv", sys.prefix).replace(APP_ROOT, str(PROJECT_ROOT))
    path = tmp_path / "users-service.service"
    path.write_text(text)
    return path


def verify(unit: Path) -> tuple[int, list[str]]:
    """systemd-analyze verify's exit status, and its output lines that concern this unit."""
    result = subprocess.run(
        [systemd_analyze(), "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = (result.stdout + result.stderr).splitlines()
    return result.returncode, [line for line in lines if unit.name in line]


def test_systemd_analyze_verify_passes(tmp_path: Path) -> None:
    """`systemd-analyze verify` accepts the unit: exit 0, not one warning about it."""
    status, complaints = verify(local_copy(tmp_path))
    assert (status, complaints) == (0, [])


def test_verify_would_catch_a_mistake(tmp_path: Path) -> None:
    """The check above means something: a misspelt directive is reported as a warning line."""
    broken = UNIT.read_text().replace("\nKillMode=mixed\n", "\nKilMode=mixed\n")
    assert broken != UNIT.read_text()
    _status, complaints = verify(local_copy(tmp_path, broken))
    assert any("KilMode" in line for line in complaints), complaints


def test_exec_start_is_the_launcher_with_the_venv_python() -> None:
    """ExecStart runs supervisor.py with the venv's python by absolute path, no shell."""
    assert unit_value("ExecStart").split()[:2] == [
        f"{APP_ROOT}/.venv/bin/python",
        f"{APP_ROOT}/supervisor.py",
    ]


def test_unit_has_the_directives_the_launcher_relies_on() -> None:
    """Notify readiness, restarts that skip config errors, the env file, sandboxing, timeouts."""
    assert unit_value("Type") == "notify"
    assert unit_value("NotifyAccess") == "all"  # READY=1 comes from a process the launcher forks
    assert unit_value("Restart") == "on-failure"
    assert "78" in unit_value("RestartPreventExitStatus").split()
    environment_file = unit_value("EnvironmentFile")
    assert environment_file.startswith("/"), "a leading - would make a missing file fine"
    assert unit_value("KillMode") in ("mixed", "control-group")
    assert unit_value("User") not in ("", "root", "0")
    assert unit_value("NoNewPrivileges") == "yes"
    assert unit_value("ProtectSystem") == "strict"
    assert f"{APP_ROOT}/var" in unit_value("ReadWritePaths").split()
    assert unit_value("PrivateTmp") == "yes"
    assert unit_value("ProtectHome") == "yes"
    assert unit_value("RestrictAddressFamilies").split() == ["AF_UNIX", "AF_INET", "AF_INET6"]


def test_start_timeout_outlasts_the_database_wait_and_the_migration() -> None:
    """TimeoutStartSec exceeds --db-wait plus --migration-timeout, so systemd never cuts a
    migration short; TimeoutStopSec leaves room for the launcher's 5 s kill grace."""
    assert timespan_seconds(unit_value("TimeoutStartSec")) > LONGEST_START_SECONDS
    assert timespan_seconds(unit_value("TimeoutStopSec")) > 5
    assert unit_values("TimeoutSec") == []  # would override both
