"""Ask Alembic itself about the revision graph (`python -m alembic_prestart.revisions.query`).

The launcher runs this as a child when its static reading of the graph steps aside. It uses
only Alembic's own configuration and script directory (no project module), and prints one JSON
object: the heads, what `alembic upgrade heads` would run from CURRENT (oldest first), and the
whole history, each revision with its message. Alembic's own errors exit 255 with a `FAILED:`
line, as its CLI does.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.script import Script, ScriptDirectory


def answer(ini: str, current: tuple[str, ...]) -> dict[str, object]:
    """Alembic's public API only: the script directory's heads, walk and iteration."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(Config(ini))
    history = list(reversed(list(script.walk_revisions())))
    known = {revision.revision for revision in history}
    # A database holding only revisions this code lacks is ahead of it (a newer release
    # migrated it): nothing to run, where Alembic itself would refuse to plan.
    ahead = bool(current) and not any(version in known for version in current)
    steps = [] if ahead else _pending(script, current)
    return {
        "ahead": ahead,
        "heads": sorted(script.get_heads()),
        "pending": [[step.revision, step.doc, step.path] for step in steps],
        "history": [[revision.revision, revision.doc] for revision in history],
    }


def _pending(script: ScriptDirectory, current: tuple[str, ...]) -> list[Script]:
    """What `upgrade heads` runs from `current`, parents first: every revision the heads need
    (down revisions and dependencies, as Alembic resolves them) that `current` does not hold."""
    applied = _needed(script, current)
    needed = _needed(script, tuple(script.get_heads()))
    order = {revision.revision: index for index, revision in enumerate(script.walk_revisions())}
    # walk_revisions() goes from the heads down: its reverse puts every parent first.
    return sorted(
        (script.get_revision(revision) for revision in needed - applied),
        key=lambda revision: -order[revision.revision],
    )


def _needed(script: ScriptDirectory, tips: tuple[str, ...]) -> set[str]:
    """The revisions in `tips` and everything they rest on."""
    seen: set[str] = set()
    stack = [revision for revision in script.get_revisions(tips) if revision is not None]
    while stack:
        revision = stack.pop()
        if revision.revision in seen:
            continue
        seen.add(revision.revision)
        for parent in (*_as_tuple(revision.down_revision), *_as_tuple(revision.dependencies)):
            stack += [found for found in script.get_revisions(parent) if found is not None]
    return seen


def _as_tuple(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def main(argv: list[str]) -> int:
    from alembic.util import CommandError

    if not argv:
        print("usage: python -m alembic_prestart.revisions.query INI [CURRENT...]", file=sys.stderr)
        return 2
    try:
        result = answer(argv[0], tuple(argv[1:]))
    except CommandError as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 255
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
