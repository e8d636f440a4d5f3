"""The start report: what a start of `serve` or `migrate` cost, and what it found.

One record per start: the phases with their durations (the wait for the database, the wait for
the migration lock with the session it waited on, the Alembic child, the read-back), each
revision the child ran with its duration (from Alembic's `Running upgrade` lines, as
observe/progress.py times them), the safety findings by rule (the guard's lines in the child's
output, safety/protocol.py), whether the child ran, and the outcome.

It leaves the launcher twice. Once as one log line, whatever the outcome (a failed start never
serves, so the line is all there is of it): `start report: {json}` in text, an object with a
`report` field under --log-format json. And, when serve succeeds, in the environment of the
uvicorn it becomes (START_REPORT), where `alembic_prestart.metrics` turns it into gauges.
Standard library only: recording it costs the launcher nothing it did not already import.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from alembic_prestart.errors import EXIT_INTERNAL, SupervisorError
from alembic_prestart.observe import logs
from alembic_prestart.safety.protocol import FINDING, REFUSED

START_REPORT = "ALEMBIC_PRESTART_START_REPORT"
FORMAT_VERSION = 1

# Outcomes.
MIGRATED = "migrated"  # the child applied at least one revision
AT_HEAD = "at_head"  # nothing to apply (a release step migrated, or another replica did)
AHEAD = "ahead"  # the database holds only revisions this release does not know
SKIPPED = "skipped"  # --skip-migrations: neither waited nor migrated
FAILED = "failed"  # the launcher exited; the report names the exit code

# Phases, in the order they run.
WAIT_FOR_DATABASE = "wait_for_database"
WAIT_FOR_LOCK = "wait_for_lock"
MIGRATE = "migrate"  # the Alembic child, from its start to its exit
READ_BACK = "read_back"
TOTAL = "total"  # from the command's start to the exec (serve) or the exit

# An environment string past 128 KiB makes execve fail (E2BIG): a report with thousands of
# revisions keeps only its slowest ones there (the log line keeps them all).
MAX_ENVIRONMENT_BYTES = 32 * 1024

# `unsafe migration: 0002 (file.py): create-index-not-concurrently: ...`, and the strict
# refusal, which starts with REFUSED and then names the revision and rule the same way.
_FINDING_LINE = re.compile(
    rf"(?:{re.escape(REFUSED)}|{re.escape(FINDING)}): \S+ \([^)]*\): (?P<rule>[a-z][a-z0-9-]*):"
)


@dataclass(frozen=True)
class RevisionTiming:
    revision: str
    message: str
    seconds: float
    finished: bool = True  # False: the child failed or was stopped while it ran


@dataclass
class StartReport:
    command: str
    started_at: float = field(default_factory=time.time)  # the wall clock, for dashboards
    phases: dict[str, float] = field(default_factory=dict)
    lock_wait_seconds: float | None = None  # None: the launcher took no lock (SQLite, at head)
    lock_holder: str | None = None  # the session it waited on, if it had to wait
    revisions: list[RevisionTiming] = field(default_factory=list)
    revisions_omitted: int = 0
    findings: dict[str, int] = field(default_factory=dict)
    child_ran: bool = False
    outcome: str | None = None
    schema_revision: str | None = None  # the database's revision(s) once the start is done
    exit_code: int | None = None
    _began: float = field(default_factory=time.monotonic, repr=False, compare=False)
    _refusal_seen: bool = field(default=False, repr=False, compare=False)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the block as `name` (added up, should it run twice), failing or not."""
        began = time.monotonic()
        try:
            yield
        finally:
            self.phases[name] = self.phases.get(name, 0.0) + time.monotonic() - began

    @contextlib.contextmanager
    def recording(self) -> Iterator[StartReport]:
        """Around a command: a failure is reported (outcome `failed`, its exit code), then
        raised on as it was."""
        try:
            yield self
        except SupervisorError as error:
            self.finish(FAILED, exit_code=error.exit_code)
            raise
        except Exception:
            self.finish(FAILED, exit_code=EXIT_INTERNAL)
            raise

    def observe_child_line(self, line: str) -> None:
        """A line of the Alembic child's output: count the guard's findings by rule."""
        if FINDING not in line:
            return
        match = _FINDING_LINE.search(line)
        if match is None:
            return
        if REFUSED in line:
            # The refusal is logged by the guard and again in Alembic's FAILED line.
            if self._refusal_seen:
                return
            self._refusal_seen = True
        self.findings[match["rule"]] = self.findings.get(match["rule"], 0) + 1

    def finish(self, outcome: str | None = None, *, exit_code: int | None = None) -> None:
        """Close the report and write its log line."""
        if outcome is not None:
            self.outcome = outcome
        self.exit_code = exit_code
        self.phases[TOTAL] = time.monotonic() - self._began
        logs.logger.info("start report", extra={"report": self.to_dict()})

    def to_dict(self, revisions: list[RevisionTiming] | None = None) -> dict[str, Any]:
        """The report as JSON data; with `revisions`, only those (the others counted as
        omitted)."""
        kept = self.revisions if revisions is None else revisions
        return {
            "version": FORMAT_VERSION,
            "command": self.command,
            "outcome": self.outcome,
            "exit_code": self.exit_code,
            "started_at": round(self.started_at, 3),
            "phases": {name: round(seconds, 4) for name, seconds in self.phases.items()},
            "lock": None
            if self.lock_wait_seconds is None
            else {"wait_seconds": round(self.lock_wait_seconds, 4), "holder": self.lock_holder},
            "child_ran": self.child_ran,
            "revisions": [
                {
                    "revision": timing.revision,
                    "message": timing.message,
                    "seconds": round(timing.seconds, 4),
                    "finished": timing.finished,
                }
                for timing in kept
            ],
            "revisions_omitted": self.revisions_omitted + len(self.revisions) - len(kept),
            "findings": dict(self.findings),
            "schema_revision": self.schema_revision,
        }

    def to_environment(self) -> str:
        """The JSON for START_REPORT, within MAX_ENVIRONMENT_BYTES: when too long, only the
        slowest revisions, in the order they ran."""
        kept = self.revisions
        while True:
            text = json.dumps(self.to_dict(kept), separators=(",", ":"), ensure_ascii=False)
            if len(text.encode()) <= MAX_ENVIRONMENT_BYTES or not kept:
                return text
            slowest = sorted(kept, key=lambda timing: timing.seconds, reverse=True)
            chosen = {id(timing) for timing in slowest[: len(kept) // 2]}
            kept = [timing for timing in kept if id(timing) in chosen]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StartReport:
        """A report read back from its JSON (START_REPORT); ValueError if it is not one."""
        try:
            lock = data.get("lock")
            return cls(
                command=str(data["command"]),
                started_at=float(data["started_at"]),
                phases={str(k): float(v) for k, v in data.get("phases", {}).items()},
                lock_wait_seconds=None if lock is None else float(lock["wait_seconds"]),
                lock_holder=None if lock is None or lock["holder"] is None else str(lock["holder"]),
                revisions=[_timing(item) for item in data.get("revisions", [])],
                revisions_omitted=int(data.get("revisions_omitted", 0)),
                findings={str(k): int(v) for k, v in data.get("findings", {}).items()},
                child_ran=bool(data.get("child_ran", False)),
                outcome=None if data.get("outcome") is None else str(data["outcome"]),
                schema_revision=None
                if data.get("schema_revision") is None
                else str(data["schema_revision"]),
                exit_code=None if data.get("exit_code") is None else int(data["exit_code"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ValueError(f"not a start report: {type(error).__name__}: {error}") from None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> StartReport | None:
        """The report the launcher handed over; None when it handed none."""
        text = environ.get(START_REPORT)
        if not text:
            return None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{START_REPORT} is not JSON: {error}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{START_REPORT} is not a JSON object")
        return cls.from_dict(data)


def _timing(item: Mapping[str, Any]) -> RevisionTiming:
    return RevisionTiming(
        revision=str(item["revision"]),
        message=str(item.get("message", "")),
        seconds=float(item["seconds"]),
        finished=bool(item.get("finished", True)),
    )
