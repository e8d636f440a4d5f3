"""The start report (observe/report.py): findings read from the child, its log line, its JSON."""

from __future__ import annotations

import json
import logging

import pytest
from alembic_prestart.errors import SupervisorError
from alembic_prestart.observe import logs
from alembic_prestart.observe.report import (
    MAX_ENVIRONMENT_BYTES,
    START_REPORT,
    RevisionTiming,
    StartReport,
)

WARN_LINE = (
    "WARNING [alembic.prestart] unsafe migration: 0002 (20261127_0002_test.py): "
    "create-index-not-concurrently: CREATE INDEX on an existing table blocks its writes: "
    "CREATE INDEX ix ON users (name) [table users: ~0 rows, 16 kB; takes SHARE]"
)
REFUSED_LINE = (
    "unsafe migration refused (--lint strict): 0003 (x.py): drop-column: dropping a column "
    "breaks the previous release: ALTER TABLE users DROP COLUMN name; the statement did not run"
)


def test_findings_are_counted_by_rule_and_a_refusal_once() -> None:
    """Each warn line counts under its rule; the refusal, logged twice, counts once."""
    report = StartReport("migrate")
    for line in (WARN_LINE, WARN_LINE, REFUSED_LINE, f"FAILED: {REFUSED_LINE}", "unsafe: nothing"):
        report.observe_child_line(line)
    assert report.findings == {"create-index-not-concurrently": 2, "drop-column": 1}


def test_a_failure_is_reported_then_raised(caplog: pytest.LogCaptureFixture) -> None:
    """recording(): the outcome `failed` and the exit code are logged, the error goes on."""
    report = StartReport("serve")
    caplog.set_level(logging.INFO, logger="alembic_prestart")
    logs.logger.propagate = True
    try:
        with pytest.raises(SupervisorError), report.recording():
            raise SupervisorError("migration failed", 3)
    finally:
        logs.logger.propagate = False
    (record,) = [r for r in caplog.records if r.getMessage() == "start report"]
    assert record.report["outcome"] == "failed"  # type: ignore[attr-defined]
    assert record.report["exit_code"] == 3  # type: ignore[attr-defined]


def test_text_and_json_lines() -> None:
    """Text: `start report: {json}` on one line; JSON: the same data in a `report` field."""
    report = StartReport("serve", outcome="at_head")
    record = logging.LogRecord("alembic_prestart", logging.INFO, "", 0, "start report", (), None)
    record.report = report.to_dict()
    text = logs.TextFormatter("%(message)s").format(record)
    assert text.startswith("start report: {") and "\n" not in text
    assert json.loads(text.removeprefix("start report: ")) == report.to_dict()
    entry = json.loads(logs.JsonFormatter().format(record))
    assert (entry["message"], entry["report"]) == ("start report", report.to_dict())


def test_the_environment_copy_round_trips_and_stays_small() -> None:
    """The JSON for the app reads back the same; thousands of revisions keep the slowest."""
    report = StartReport("serve", outcome="migrated", lock_wait_seconds=1.5, lock_holder="pid 7")
    report.revisions = [RevisionTiming(f"{n:04d}", "m" * 40, n / 1000) for n in range(3000)]
    text = report.to_environment()
    assert len(text.encode()) <= MAX_ENVIRONMENT_BYTES
    back = StartReport.from_environment({START_REPORT: text})
    assert back is not None
    assert back.revisions_omitted == 3000 - len(back.revisions) > 0
    assert back.revisions[-1].revision == "2999"  # the slowest kept, in the order they ran
    assert (back.lock_wait_seconds, back.lock_holder) == (1.5, "pid 7")
    assert StartReport.from_environment({}) is None
    with pytest.raises(ValueError):
        StartReport.from_environment({START_REPORT: '{"no": "report"}'})
