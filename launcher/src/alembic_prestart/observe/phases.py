"""The launcher's phases: named in every JSON log line and reported to systemd as STATUS=."""

from __future__ import annotations

from functools import cache

from alembic_prestart.observe import logs
from alembic_prestart.process.notify import Notifier

WAITING = "waiting-for-database"
MIGRATING = "migrating"
CHECKING = "checking"
STARTING = "starting-server"

_STATUS_TEXT = {
    WAITING: "waiting for the database",
    MIGRATING: "migrating to head",
    CHECKING: "checking the schema",
    STARTING: "starting the server",
}


@cache
def notifier() -> Notifier:
    return Notifier.from_environment()


def enter(phase: str, detail: str | None = None) -> None:
    logs.set_phase(phase)
    text = _STATUS_TEXT[phase]
    notifier().status(f"{text}: {detail}" if detail else text)


def stopping(reason: str) -> None:
    notifier().send("STOPPING=1", f"STATUS={reason}")
