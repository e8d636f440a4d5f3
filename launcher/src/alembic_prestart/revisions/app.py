"""The code's revisions, for an app that checks its database (readiness): public API.

The static reading of the revision graph when it is sure, else Alembic's own script directory:
the same answer the launcher acts on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CodeRevisions:
    heads: tuple[str, ...]  # what the code expects the database to be at
    known: frozenset[str]  # every revision the code has


def code_revisions(alembic_config: Path) -> CodeRevisions:
    from alembic_prestart.revisions.config import load_alembic_config
    from alembic_prestart.revisions.graph import read_revision_graph

    config = load_alembic_config(alembic_config)
    graph = read_revision_graph(config)
    if graph is not None:
        return CodeRevisions(graph.heads, frozenset(rev.id for rev in graph.chain()))
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(Config(str(config.path)))
    known = frozenset(rev.revision for rev in script.walk_revisions())
    return CodeRevisions(tuple(sorted(script.get_heads())), known)
