"""Write small Alembic projects (alembic.ini + revision files) and ask Alembic about them."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic_prestart.revisions.config import load_alembic_config
from alembic_prestart.revisions.graph import RevisionGraph, read_revision_graph

INI = """[alembic]
script_location = %(here)s/migrations
path_separator = os
{extra}
"""


def revision_source(
    rev_id: object,
    down: object,
    *,
    labels: object = None,
    depends_on: object = None,
    message: str = "a revision",
    extra: str = "",
) -> str:
    """A revision file as Alembic's template writes it, plus `extra` top-level code."""
    return (
        f'"""{message}\n\nRevision ID: {rev_id}\n"""\n'
        "from typing import Sequence, Union\n\n"
        "import sqlalchemy as sa\n"
        "from alembic import op\n\n"
        f"revision: str = {rev_id!r}\n"
        f"down_revision: Union[str, Sequence[str], None] = {down!r}\n"
        f"branch_labels: Union[str, Sequence[str], None] = {labels!r}\n"
        f"depends_on: Union[str, Sequence[str], None] = {depends_on!r}\n"
        f"{extra}\n\n"
        "def upgrade() -> None:\n    pass\n\n\n"
        "def downgrade() -> None:\n    pass\n"
    )


def write_project(root: Path, files: dict[str, str], extra_ini: str = "") -> Path:
    """files: path relative to root -> source. Returns the alembic.ini path."""
    (root / "migrations" / "versions").mkdir(parents=True, exist_ok=True)
    for relative, source in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    ini = root / "alembic.ini"
    ini.write_text(INI.format(extra=extra_ini))
    return ini


@contextmanager
def cwd(path: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def reader(ini: Path) -> RevisionGraph | None:
    with cwd(ini.parent):
        return read_revision_graph(load_alembic_config(ini))


def alembic_script(ini: Path) -> ScriptDirectory | None:
    """Alembic's loaded script directory as the CLI builds it, or None if Alembic refuses."""
    config = Config(str(ini), toml_file=str(ini.parent / "pyproject.toml"))
    with cwd(ini.parent), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            script = ScriptDirectory.from_config(config)
            script.revision_map.heads  # noqa: B018 - loads every file
        except Exception:
            return None
    return script


def alembic_heads(script: ScriptDirectory) -> tuple[str, ...]:
    """`alembic heads`, sorted."""
    return tuple(sorted(rev.revision for rev in script.get_revisions("heads") if rev))


def alembic_pending(script: ScriptDirectory, current: tuple[str, ...]) -> list[str] | None:
    """What `alembic upgrade heads` runs from these database heads, or None if it fails."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            steps = script._upgrade_revs("heads", current)  # type: ignore[arg-type]
        except Exception:
            return None
    return [step.revision.revision for step in steps]
