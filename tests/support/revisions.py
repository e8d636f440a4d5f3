"""Write extra revision files into a project copy."""

from pathlib import Path
from textwrap import dedent, indent


def add_revision(root: Path, revision: str, down: str | None, upgrade: str) -> Path:
    """A revision file whose upgrade() runs the given body (Python, already dedented)."""
    path = root / "migrations" / "versions" / f"20261127_{revision}_test.py"
    body = indent(dedent(upgrade).strip() or "pass", "    ")
    path.write_text(
        f'"""test revision {revision}"""\n'
        "import sys\nimport time\n\n"
        "import sqlalchemy as sa\n"
        "from alembic import op\n\n"
        f"revision = {revision!r}\n"
        f"down_revision = {down!r}\n"
        "branch_labels = None\n"
        "depends_on = None\n\n\n"
        f"def upgrade() -> None:\n{body}\n\n\n"
        "def downgrade() -> None:\n    pass\n"
    )
    return path


def code_head(root: Path | None = None) -> str:
    """The project's head, read as Alembic reads it: tests never assume a particular one."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from tests.support.urls import PROJECT_ROOT

    config = Config(str((root or PROJECT_ROOT) / "alembic.ini"))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None, "the project has several heads: merge them"
    return head


HEAD = code_head()
