"""Name the cause of a failed migration from the child's captured output."""

from __future__ import annotations

import re
from collections.abc import Sequence

_REVISION_FRAME = re.compile(
    r'File "(?P<path>[^"]*/migrations/versions/[^"]+\.py)", line (?P<line>\d+)'
)
_EXCEPTION_LINE = re.compile(
    r"^(?:[A-Za-z_][\w.]*(?:Error|Exception|Exit|Warning)|[A-Za-z_][\w.]*Error)\b.*"
)

# Checked in order; the first pattern found anywhere in the output names the cause.
_KNOWN_CAUSES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"ConnectionDoesNotExistError|connection was closed in the middle of operation|"
            r"terminating connection due to (administrator command|crash of another server)|"
            r"AdminShutdown|CrashShutdown|server closed the connection unexpectedly|"
            r"the database system is shutting down|"
            # SQLAlchemy, once a lost connection has invalidated the one a revision ran on.
            r"Can't reconnect until invalid transaction is rolled back",
            re.I,
        ),
        "the database connection was lost mid-migration (did the server restart or crash?); "
        "the revision's transaction was rolled back by the server: safe to retry",
    ),
    (
        re.compile(r"lock timeout|LockNotAvailable|canceling statement due to lock timeout", re.I),
        "lock timeout",
    ),
    (
        re.compile(
            r"password authentication failed|InvalidPasswordError|"
            r"InvalidAuthorizationSpecification",
            re.I,
        ),
        "authentication failed",
    ),
    (
        re.compile(r'database "[^"]*" does not exist|InvalidCatalogName', re.I),
        "the database does not exist",
    ),
    (
        re.compile(r"Multiple head revisions are present|multiple heads", re.I),
        "multiple heads: merge them with `alembic merge heads`",
    ),
    (
        re.compile(r"Can't locate revision identified by '([^']*)'"),
        "the database is at a revision the code does not know ({0}): was the code rolled back?",
    ),
    (
        re.compile(
            r"Connection refused|could not connect|Name or service not known|"
            r"Temporary failure in name resolution|ConnectionRefusedError|"
            r"ConnectionResetError|CannotConnectNow",
            re.I,
        ),
        "cannot connect to the database",
    ),
    (
        re.compile(r"statement timeout|canceling statement due to statement timeout", re.I),
        "statement timeout",
    ),
)


def diagnose(tail: Sequence[str]) -> str:
    """A one-line cause: a revision file and line with its exception, a known cause, or the
    last line the child printed."""
    text = "\n".join(tail)
    failed = [line.removeprefix("FAILED:").strip() for line in tail if line.startswith("FAILED:")]
    for pattern, cause in _KNOWN_CAUSES:
        match = pattern.search(text)
        if match:
            # env.py's own FAILED: line for a lock timeout also names the blocking session.
            if cause == "lock timeout" and failed and pattern.search(failed[-1]):
                return failed[-1]
            return cause.format(*match.groups())
    frames = list(_REVISION_FRAME.finditer(text))
    if frames:
        frame = frames[-1]
        exception = _last_exception(tail)
        where = f"{_short(frame['path'])}, line {frame['line']}"
        return f"exception in revision {where}" + (f": {exception}" if exception else "")
    if failed:
        return failed[-1]
    exception = _last_exception(tail)
    if exception:
        return exception
    lines = [line.strip() for line in tail if line.strip()]
    return lines[-1] if lines else "no output"


def _last_exception(tail: Sequence[str]) -> str | None:
    for line in reversed(tail):
        if _EXCEPTION_LINE.match(line.strip()):
            return line.strip()
    return None


def _short(path: str) -> str:
    return "migrations/versions/" + path.rsplit("/migrations/versions/", 1)[-1]
