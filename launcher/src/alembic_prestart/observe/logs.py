"""The launcher's log lines: text by default, or one JSON object per line.

The same JSON formatter serves uvicorn after exec (see uvicorn_json_logging.json), so the
launcher's lines, the migration child's lines and uvicorn's logs share one shape.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger("alembic_prestart")

UVICORN_JSON_CONFIG = Path(__file__).with_name("uvicorn_json_logging.json")

_current_phase = "starting"
# C0 controls but tab and newline (a traceback keeps its lines), DEL, and C1 controls.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_timestamps = False
# Alembic's own format in alembic.ini: "INFO  [alembic.runtime.migration] Running upgrade ..."
_CHILD_LINE = re.compile(r"^(DEBUG|INFO|WARN|WARNING|ERROR|CRITICAL)\s+\[([^\]]+)\]\s?(.*)$")


def set_phase(phase: str) -> None:
    global _current_phase
    _current_phase = phase


def redact(text: str) -> str:
    """The one redaction of every line the launcher writes (its own, the children's, errors):
    each URL with its password replaced by *** (by parsing it, never by searching for the
    password: a password of `head` leaves "schema at head" alone), then control characters
    escaped (a server's message must not drive the operator's terminal). Texts a driver built
    from the URL, which may quote pieces of a misread password, are scrubbed where they are
    made (db/url.py's scrub)."""
    from alembic_prestart.db.url import redact_urls_in

    return escape_controls(redact_urls_in(text))


def escape_controls(text: str) -> str:
    """ANSI escapes and other control characters shown as \\xNN; tabs kept."""
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


def _iso_time(created: float) -> str:
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
        + f".{int(created % 1 * 1000):03d}Z"
    )


class JsonFormatter(logging.Formatter):
    """time, level, logger, message, phase: one object per line."""

    def __init__(self, phase: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.phase = phase

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": _iso_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "phase": self.phase or getattr(record, "phase", None) or _current_phase,
        }
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        report = getattr(record, "report", None)
        if report is not None:  # the start report (observe/report.py): data, not text
            entry["report"] = _redacted(report)
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        report = getattr(record, "report", None)
        if report is not None:  # the start report: `start report: {json}`, one line
            text += ": " + json.dumps(report, separators=(",", ":"), ensure_ascii=False)
        return redact(text)


def _redacted(value: Any) -> Any:
    """Each string in JSON data redacted as a line would be."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    return value


def configure(log_format: str, *, timestamps: bool = True) -> None:
    global _timestamps
    _timestamps = timestamps and log_format != "json"
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    elif timestamps:
        handler.setFormatter(
            TextFormatter("%(asctime)s [alembic-prestart] %(levelname)s %(message)s", "%H:%M:%S")
        )
    else:
        handler.setFormatter(TextFormatter("[alembic-prestart] %(levelname)s %(message)s"))
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False


def child_line(line: str, *, log_format: str) -> str:
    """One line of the migration child's output, as the launcher writes it to stderr."""
    line = redact(line.rstrip("\r\n"))
    if log_format != "json":
        stamp = time.strftime("%H:%M:%S ") if _timestamps else ""
        return f"{stamp}[migrate] {line}"
    match = _CHILD_LINE.match(line)
    level, name, message = match.groups() if match else ("INFO", "migrate", line)
    entry = {
        "time": _iso_time(time.time()),
        "level": "WARNING" if level == "WARN" else level,
        "logger": name,
        "message": message,
        "phase": _current_phase,
    }
    return json.dumps(entry, ensure_ascii=False)
