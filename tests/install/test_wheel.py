"""The launcher as a user gets it: its wheel, installed non-editable into a clean virtual
environment, driving a project made by `alembic init -t async` with docs/adopting.md's recipe.

Slow (a venv and a pip install from the package index, or pip's cache), so it runs in the full
suite and `.ci/run`, not the quick run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.foreign.project import adapt_env_py
from tests.support.processes import LoggedProcess, kill_group
from tests.support.project import free_port
from tests.support.urls import PROJECT_ROOT, DatabaseURL

pytestmark = pytest.mark.slow

LAUNCHER = PROJECT_ROOT / "launcher"
# What the users service needs and the launcher must not bring.
NOT_PULLED_IN = ("fastapi", "aiosqlite", "email-validator", "pydantic-settings")
GENERIC_TOP_LEVEL_NAMES = ("supervisor", "service", "launcher")

APP = """\
from fastapi import FastAPI

app = FastAPI()


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}
"""

REVISION = '''\
"""create widgets"""
import sqlalchemy as sa
from alembic import op

revision = "a1"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("widgets", sa.Column("id", sa.Integer, primary_key=True))


def downgrade() -> None:
    op.drop_table("widgets")
'''


def _run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600, **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, f"{argv}: {result.stdout}{result.stderr}"
    return result


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean venv holding the launcher's wheel alone (not editable)."""
    base = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(base), str(LAUNCHER)])
    [wheel] = base.glob("alembic_prestart-*.whl")
    _run([sys.executable, "-m", "venv", str(base / "venv")])
    _run([str(base / "venv" / "bin" / "pip"), "install", "-q", str(wheel)])
    return base / "venv"


def _site_packages(venv: Path) -> Path:
    [site] = venv.glob("lib/python3.*/site-packages")
    return site


def test_the_wheel_alone_brings_nothing_of_the_users_service(venv: Path) -> None:
    """Installed alone, the wheel pulls in no app dependency and no generic top-level name."""
    listed = _run([str(venv / "bin" / "pip"), "list", "--format", "json"]).stdout
    installed = {entry["name"].lower().replace("_", "-") for entry in json.loads(listed)}
    assert not installed & set(NOT_PULLED_IN)
    site = _site_packages(venv)
    for name in GENERIC_TOP_LEVEL_NAMES:
        assert not (site / name).exists() and not (site / f"{name}.py").exists(), name
    assert (site / "alembic_prestart" / "observe" / "uvicorn_json_logging.json").is_file()


def test_version_names_the_launchers_own_version(venv: Path) -> None:
    """`alembic-prestart --version` prints the launcher distribution's version."""
    version = tomllib.loads((LAUNCHER / "pyproject.toml").read_text())["project"]["version"]
    out = _run([str(venv / "bin" / "alembic-prestart"), "--version"]).stdout
    assert out.split() == ["alembic-prestart,", "version", version]


def test_an_alembic_init_async_project_is_served_with_json_logs(
    venv: Path, postgres_url: DatabaseURL, tmp_path: Path
) -> None:
    """`alembic init -t async` + the documented env.py recipe + a small FastAPI app: migrated
    and served from the wheel with --log-format json (every line JSON, 200 on /healthz)."""
    _run([str(venv / "bin" / "pip"), "install", "-q", "fastapi"])
    project = tmp_path / "shop"
    project.mkdir()
    _run([str(venv / "bin" / "alembic"), "init", "-t", "async", "migrations"], cwd=project)
    adapt_env_py(project / "migrations" / "env.py", "async")
    (project / "migrations" / "versions" / "a1_create_widgets.py").write_text(REVISION)
    (project / "web.py").write_text(APP)
    port = free_port()
    url = postgres_url.url.replace("postgresql://", "postgres://", 1) + "?sslmode=prefer"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE_", "VIRTUAL_ENV", "PYTHON"))
    }
    env.update(DATABASE_URL=url, PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    server = LoggedProcess(
        [
            str(venv / "bin" / "alembic-prestart"),
            "--app",
            "web:app",
            "--port",
            str(port),
            "--log-format",
            "json",
        ],
        env=env,
        cwd=project,
        log_path=tmp_path / "serve.out",
    )
    try:
        assert server.wait_http(port, "/healthz", timeout=60) == 200
    finally:
        kill_group(server.pid)
        server.wait()
    lines = [line for line in server.output.splitlines() if line.strip()]
    for line in lines:
        json.loads(line)  # every line is one JSON object
    messages = [json.loads(line)["message"] for line in lines]
    assert any("schema at head (a1)" in message for message in messages), messages
    assert any("migration guard installed" in message for message in messages), messages
