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
from typing import Any, cast


def describe(ini: str, current: tuple[str, ...]) -> dict[str, object]:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(Config(ini))
    history = list(reversed(list(script.walk_revisions())))
    known = {revision.revision for revision in history}
    # A database holding only revisions this code lacks is ahead of it (a newer release
    # migrated it): nothing to run, where Alembic itself would refuse to plan.
    ahead = bool(current) and not any(version in known for version in current)
    # Otherwise what `upgrade heads` runs: the same call Alembic's upgrade command makes.
    steps = [] if ahead else script._upgrade_revs("heads", cast(Any, current))
    return {
        "ahead": ahead,
        "heads": sorted(script.get_heads()),
        "pending": [
            [step.revision.revision, step.revision.doc, step.revision.path] for step in steps
        ],
        "history": [[rev.revision, list(rev._all_down_revisions), rev.doc] for rev in history],
    }


def main(argv: list[str]) -> int:
    from alembic.util import CommandError

    if not argv:
        print("usage: python -m alembic_prestart.revisions.query INI [CURRENT...]", file=sys.stderr)
        return 2
    try:
        answer = describe(argv[0], tuple(argv[1:]))
    except CommandError as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 255
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
