"""What the code's revisions say of a database: its heads, what is pending, whether the database
is ahead. From the static graph when it is sure, else from Alembic itself, in a child.

The one place that answers "is the database at head, behind, or ahead": serve's fast path,
the read-back after the migration child, `check` and `status` all ask here.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

from alembic_prestart.config import Settings, application_name
from alembic_prestart.errors import EXIT_MIGRATION_FAILED, SupervisorError
from alembic_prestart.observe import phases
from alembic_prestart.process.signals import SignalState, stop_if_signalled
from alembic_prestart.revisions.config import AlembicConfig
from alembic_prestart.revisions.graph import RevisionGraph, read_revision_graph

QUERY_TIMEOUT_SECONDS = 120.0


@functools.cache
def static_graph(config: AlembicConfig) -> RevisionGraph | None:
    """The static revision graph, read once per run (so stepping aside is said once)."""
    return read_revision_graph(config)


@dataclass(frozen=True)
class CodeState:
    """What the code's revisions say of a database at `current`."""

    heads: list[str]
    pending: list[tuple[str, str, str | None]]  # (revision, message, file), in order
    history: list[tuple[str, str]]  # (revision, message), oldest first
    ahead: bool  # the database holds only revisions this code does not know

    @property
    def at_head(self) -> bool:
        """Nothing to apply: at the code's head, or ahead of it (a newer release migrated)."""
        return self.ahead or not self.pending


def code_state(settings: Settings, signals: SignalState, current: tuple[str, ...]) -> CodeState:
    """From the static graph when it is sure, else from Alembic itself, in a child."""
    graph = static_graph(settings.alembic)
    if graph is not None:
        history = [(revision.id, revision.message) for revision in graph.chain()]
        ahead = graph.is_ahead(current)
        steps = [] if ahead else graph.pending(current)
        if steps is not None:
            pending: list[tuple[str, str, str | None]] = [
                (step.id, step.message, str(step.path)) for step in steps
            ]
            return CodeState(list(graph.heads), pending, history, ahead)
    answer = _ask_alembic(settings, signals, current)
    return CodeState(
        heads=answer["heads"],
        pending=[(revision, doc, path) for revision, doc, path in answer["pending"]],
        history=[(revision, doc) for revision, doc in answer["history"]],
        ahead=answer["ahead"],
    )


def _ask_alembic(
    settings: Settings, signals: SignalState, current: tuple[str, ...]
) -> dict[str, Any]:
    """The slow, authoritative answer: Alembic's own script directory, in a child."""
    from alembic_prestart.process.child import run_child

    phases.enter(phases.CHECKING)
    lines: list[str] = []
    result = run_child(
        [
            settings.python,
            "-m",
            "alembic_prestart.revisions.query",
            str(settings.alembic_ini),
            *current,
        ],
        cwd=settings.project_root,
        env=settings.child_environment(application_name("check")),
        timeout=QUERY_TIMEOUT_SECONDS,
        signals=signals,
        log_format=settings.log_format,
        on_line=lines.append,
        what="the revision query",
    )
    stop_if_signalled(signals, "while checking")
    if result.returncode != 0:
        from alembic_prestart.process.diagnosis import diagnose

        raise SupervisorError(
            f"Alembic could not read the revisions (exit status {result.returncode}): "
            f"{diagnose(result.tail)}",
            EXIT_MIGRATION_FAILED,
        )
    answer: dict[str, Any] = json.loads(lines[-1])
    return answer
