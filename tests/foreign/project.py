"""A second, foreign FastAPI-less project built from Alembic's own templates, and the commands
that drive the launcher on it (the `supervisor` console script, bare `alembic`).

The project knows the launcher only through the two lines its env.py gains. Its layout differs
from this project's on purpose: the scripts live in `database/db_migrations` (alembic.ini is
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

BIN = Path(sys.executable).parent
SUPERVISOR = BIN / "supervisor"
SCRIPTS = Path("database") / "db_migrations"
APP = "shop.web:app"
SQLITE_URL = "sqlite:///var/foreign.db"

# env.py reads the URL from the environment, exactly as the launcher passes it on; only the
# SQLAlchemy driver name is added (the app hands the same URL to its own driver unchanged).
URL_LINES = {
    "generic": (
        "url = os.environ['DATABASE_URL']\n"
        "url = re.sub(r'^postgres(ql)?://', 'postgresql+psycopg://', url)\n"
    ),
    "async": (
        "url = os.environ['DATABASE_URL']\n"
        "url = re.sub(r'^postgres(ql)?://', 'postgresql+asyncpg://', url)\n"
        "url = re.sub(r'^sqlite://', 'sqlite+aiosqlite://', url)\n"
    ),
}
SET_URL = "config.set_main_option('sqlalchemy.url', url.replace('%', '%%'))\n"

# The two lines the launcher asks of an env.py, per template: an import, and a `with` around
# the block that configures the context and runs the migrations.
LOCK_IMPORT = {
    "generic": "from launcher import migration_lock\n",
    "async": "from launcher import async_migration_lock\n",
}
LOCK_WITH = {
    "generic": ("with connectable.connect() as connection:", "with migration_lock(connection):"),
    "async": (
        "async with connectable.connect() as connection:",
        "async with async_migration_lock(connection):",
    ),
}

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
    project.env_py.write_text(adapt_env_py(project.env_py.read_text(), template))
    (root / "shop").mkdir()
    (root / "shop" / "__init__.py").write_text("")
    (root / "shop" / "web.py").write_text(WEB)
    project.add_revision("create widgets", "widgets")
    project.add_revision("create gadgets", "gadgets")
    return project


def adapt_env_py(source: str, template: str) -> str:
    """Alembic's env.py with the URL read from DATABASE_URL and the migration lock added."""
    source = _after(source, "from alembic import context\n", LOCK_IMPORT[template])
    source = _after(
        source, "import asyncio\n" if template == "async" else "", "import os\nimport re\n"
    )
    source = _after(source, "config = context.config\n", URL_LINES[template] + SET_URL)
    return _wrap_block(source, *LOCK_WITH[template])


def _after(source: str, anchor: str, text: str) -> str:
    assert anchor in source, f"Alembic's template changed: no {anchor!r}"
    return source.replace(anchor, anchor + text, 1)


def _wrap_block(source: str, opener: str, wrapper: str) -> str:
    """Put `wrapper` as the only statement of the block `opener` starts, indenting its body."""
    lines = source.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.strip() == opener)
    indent = len(lines[start]) - len(lines[start].lstrip())
    end = start + 1
    while end < len(lines) and (
        not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > indent
    ):
        end += 1
    while not lines[end - 1].strip():  # trailing blank lines stay outside the block
        end -= 1
    body = [("    " + line) if line.strip() else line for line in lines[start + 1 : end]]
    inner = " " * (indent + 4) + wrapper + "\n"
    return "".join([*lines[: start + 1], inner, *body, *lines[end:]])


class Command(Launcher):
    """Any command line, run and stopped as the launcher is (its own session, SIGTERM)."""

    def __init__(
        self, argv: Sequence[str], *, env: dict[str, str], cwd: Path, log_path: Path
    ) -> None:
        LoggedProcess.__init__(self, argv, env=env, cwd=cwd, log_path=log_path)


class Supervisor(Command):
    """The `supervisor` console script `pip install` made, as a real process."""

    name = "supervisor"

    def __init__(
        self, args: Sequence[str], *, env: dict[str, str], cwd: Path, log_path: Path
    ) -> None:
        assert SUPERVISOR.exists(), f"no {SUPERVISOR}: pip install -e . makes the console script"
        super().__init__([str(SUPERVISOR), *args], env=env, cwd=cwd, log_path=log_path)
