"""A second, foreign FastAPI-less project built from Alembic's own templates, and the commands
that drive the launcher on it (the `alembic-prestart` console script, bare `alembic`).

The project knows the launcher only through docs/adopting.md's env.py recipe. Its layout
differs from this project's on purpose: the scripts live in `database/db_migrations` (alembic.ini is
not in their parent folder), the app is a plain ASGI callable in `shop/web.py`, and its
SQLite file is `var/foreign.db`, relative to the folder of alembic.ini.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.processes import Launcher, LoggedProcess
from tests.support.urls import PROJECT_ROOT

BIN = Path(sys.executable).parent
SUPERVISOR = BIN / "alembic-prestart"
SCRIPTS = Path("database") / "db_migrations"
APP = "shop.web:app"
SQLITE_URL = "sqlite:///var/foreign.db"

ADOPTING = PROJECT_ROOT / "docs" / "adopting.md"

WEB = '''\
"""A foreign app: plain ASGI, its own driver, DATABASE_URL exactly as it was given."""

import json
import os
import sqlite3

DATABASE_URL = os.environ["DATABASE_URL"]


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = json.dumps(
        {
            "database_url": DATABASE_URL,
            "tables": sorted(await tables()),
            "module": __file__,
            "cwd": os.getcwd(),
        }
    ).encode()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def tables():
    if DATABASE_URL.startswith("sqlite"):
        path = DATABASE_URL.partition(":///")[2]  # relative: from the project root, the cwd
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
            rows = connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
            return [row[0] for row in rows]
    import asyncpg

    connection = await asyncpg.connect(DATABASE_URL)  # libpq's URL: refuses SQLAlchemy's
    try:
        rows = await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        return [row[0] for row in rows]
    finally:
        await connection.close()
'''


@dataclass
class ForeignProject:
    root: Path
    template: str
    revisions: list[tuple[str, str, str]] = field(default_factory=list)  # id, message, table

    @property
    def ini(self) -> Path:
        return self.root / "alembic.ini"

    @property
    def env_py(self) -> Path:
        return self.root / SCRIPTS / "env.py"

    @property
    def tables(self) -> list[str]:
        return [table for _id, _message, table in self.revisions]

    def alembic(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The real `alembic` command of the venv, run from the project's folder."""
        return subprocess.run(
            [str(BIN / "alembic"), *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )

    def add_revision(self, message: str, table: str) -> str:
        """`alembic revision -m message`, its upgrade filled with op.create_table(table)."""
        output = self.alembic("revision", "-m", message).stdout
        path = Path(re.search(r"Generating (\S+\.py)", output).group(1))  # type: ignore[union-attr]
        source = path.read_text()
        revision = re.search(r"^revision: str = '(\w+)'", source, re.M).group(1)  # type: ignore[union-attr]
        source = source.replace(
            '    """Upgrade schema."""\n    pass\n',
            f'    """Upgrade schema."""\n    op.create_table("{table}", '
            'sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.Text))\n',
        ).replace(
            '    """Downgrade schema."""\n    pass\n',
            f'    """Downgrade schema."""\n    op.drop_table("{table}")\n',
        )
        path.write_text(source)
        self.revisions.append((revision, message, table))
        return revision


def build(root: Path, template: str) -> ForeignProject:
    """`alembic init -t <template>`, env.py adapted, two revisions, a small ASGI app."""
    root.mkdir(parents=True)
    project = ForeignProject(root, template)
    project.alembic("init", "-t", template, str(SCRIPTS))
    adapt_env_py(project.env_py, template)
    (root / "shop").mkdir()
    (root / "shop" / "__init__.py").write_text("")
    (root / "shop" / "web.py").write_text(WEB)
    project.add_revision("create widgets", "widgets")
    project.add_revision("create gadgets", "gadgets")
    return project


def documented_diff(template: str) -> str:
    """docs/adopting.md's env.py recipe for Alembic's `template`, as written."""
    text = ADOPTING.read_text()
    match = re.search(
        rf"`alembic init -t {template} migrations`, then:\n\n```diff\n(.*?)```", text, re.S
    )
    assert match, f"docs/adopting.md has no recipe for the {template} template"
    return match.group(1)


def adapt_env_py(env_py: Path, template: str) -> None:
    """Apply the documented diff to a freshly generated env.py, verbatim (patch(1) refuses a
    recipe that no longer matches Alembic's template), and check that what it leaves passes
    pyflakes' rules: no import left unused, no name left undefined."""
    subprocess.run(
        ["patch", "--no-backup-if-mismatch", "--forward", "--quiet", str(env_py)],
        input=documented_diff(template),
        text=True,
        check=True,
        capture_output=True,
    )
    lint = [str(BIN / "ruff"), "check", "--isolated", "--select", "F", "--no-cache", str(env_py)]
    result = subprocess.run(lint, capture_output=True, text=True)
    assert result.returncode == 0, f"the {template} recipe leaves:\n{result.stdout}"


class Command(Launcher):
    """Any command line, run and stopped as the launcher is (its own session, SIGTERM)."""

    def __init__(
        self, argv: Sequence[str], *, env: dict[str, str], cwd: Path, log_path: Path
    ) -> None:
        LoggedProcess.__init__(self, argv, env=env, cwd=cwd, log_path=log_path)


class Supervisor(Command):
    """The `alembic-prestart` console script `pip install` made, as a real process."""

    name = "alembic-prestart"

    def __init__(
        self, args: Sequence[str], *, env: dict[str, str], cwd: Path, log_path: Path
    ) -> None:
        assert SUPERVISOR.exists(), (
            f"no {SUPERVISOR}: pip install ./launcher makes the console script"
        )
        super().__init__([str(SUPERVISOR), *args], env=env, cwd=cwd, log_path=log_path)
