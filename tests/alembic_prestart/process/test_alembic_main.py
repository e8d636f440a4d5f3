"""The Alembic child's entry point (process/alembic_main.py): Alembic's own command line, its
imports done with the collector paused."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

from alembic_prestart.process import alembic_main


def test_preload_imports_what_env_py_needs_and_leaves_the_collector_on() -> None:
    try:
        alembic_main.preload()
        assert gc.isenabled()
        assert gc.get_freeze_count() > 0
        for name in (
            "alembic.command",
            "alembic_prestart.lock.env",
            "alembic_prestart.safety.guard",
        ):
            assert name in sys.modules
    finally:
        gc.unfreeze()


def test_it_is_alembics_command_line_with_alembics_exit_statuses(tmp_path: Path) -> None:
    """`--help` and a command Alembic refuses answer as `python -m alembic` does."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", alembic_main.__name__, *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert run("--help").returncode == 0
    assert "usage: alembic" in run("--help").stdout
    missing = run("-c", str(tmp_path / "alembic.ini"), "upgrade", "head")
    assert missing.returncode == 255, missing.stderr  # Alembic's own CommandError
    assert missing.stdout.startswith("FAILED: "), missing.stdout
