"""The launcher knows whether env.py installed the migration guard: under strict, a child
whose env.py lacks it is refused before anything is applied, with the line to add (exit 5);
under warn, one line says the analysis did not run."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.foreign.project import BIN, ForeignProject, Supervisor
from tests.foreign.test_foreign_project import _env, _tables, _versions
from tests.support.urls import DatabaseURL

pytestmark = pytest.mark.slow


def _without_the_guard(foreign: ForeignProject, url: DatabaseURL, tmp_path: Path) -> None:
    """env.py back to Alembic's own template (no alembic_prestart at all), its URL in the ini,
    and a first revision slow enough that a refusal lands before its transaction commits."""
    raw = tmp_path / "raw"
    subprocess.run(
        [str(BIN / "alembic"), "init", "-t", "generic", str(raw)],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    shutil.copy(raw / "env.py", foreign.env_py)
    driver_url = url.url.replace("postgresql://", "postgresql+psycopg://", 1)
    ini = foreign.ini.read_text()
    foreign.ini.write_text(
        re.sub(r"(?m)^sqlalchemy\.url = .*$", f"sqlalchemy.url = {driver_url}", ini)
    )
    first = next((foreign.root / "database" / "db_migrations" / "versions").glob("*.py"))
    source = first.read_text()
    first.write_text(
        source.replace(
            '    """Upgrade schema."""\n',
            '    """Upgrade schema."""\n    op.execute("SELECT pg_sleep(2)")\n',
            1,
        )
    )


def _migrate(foreign: ForeignProject, url: DatabaseURL, log: Path, lint: str) -> Supervisor:
    run = Supervisor(
        ["migrate", "--alembic-config", str(foreign.ini), "--lint", lint],
        env=_env(url.url),
        cwd=log.parent,
        log_path=log,
    )
    run.wait()
    return run


@pytest.mark.parametrize("template", ["generic"])
def test_strict_refuses_a_child_without_the_guard(
    foreign: ForeignProject, postgres_url: DatabaseURL, tmp_path: Path
) -> None:
    """No guard in env.py and --lint strict: exit 5 naming the line to add, nothing applied."""
    _without_the_guard(foreign, postgres_url, tmp_path)
    run = _migrate(foreign, postgres_url, tmp_path / "migrate.out", "strict")
    assert run.process.returncode == 5, run.output
    assert "migration_lock" in run.output and "alembic_prestart" in run.output
    assert _versions(foreign, postgres_url.url) == []
    assert not set(foreign.tables) & _tables(foreign, postgres_url.url)


@pytest.mark.parametrize("template", ["generic"])
def test_warn_says_once_that_the_analysis_did_not_run(
    foreign: ForeignProject, postgres_url: DatabaseURL, tmp_path: Path
) -> None:
    """No guard in env.py and --lint warn: migrated, and one warning says the analysis did
    not run."""
    _without_the_guard(foreign, postgres_url, tmp_path)
    run = _migrate(foreign, postgres_url, tmp_path / "migrate.out", "warn")
    assert run.process.returncode == 0, run.output
    assert run.output.count("migration safety analysis did not run") == 1
    assert _versions(foreign, postgres_url.url) == [foreign.revisions[-1][0]]
