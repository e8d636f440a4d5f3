"""The app-facing helper (alembic_prestart.metrics): the start report as gauges."""

from __future__ import annotations

import pytest
from alembic_prestart.metrics import register_start_report
from alembic_prestart.observe.report import START_REPORT, RevisionTiming, StartReport
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families


def test_the_report_becomes_gauges() -> None:
    """Phases, lock wait, revisions, findings, child and outcome, as the parser reads them."""
    report = StartReport(
        "serve",
        phases={"wait_for_database": 0.25, "migrate": 2.0},
        lock_wait_seconds=1.5,
        lock_holder="pid 9 ('other')",
        revisions=[RevisionTiming("0002", "add x", 1.75)],
        findings={"drop-column": 2},
        child_ran=True,
        outcome="migrated",
        schema_revision="0002",
    )
    registry = CollectorRegistry()
    assert register_start_report(registry, environ={START_REPORT: report.to_environment()})
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for sample in family.samples
    }
    prefix = "alembic_prestart"
    assert samples[(f"{prefix}_phase_duration_seconds", (("phase", "migrate"),))] == 2.0
    assert samples[(f"{prefix}_lock_wait_seconds", ())] == 1.5
    assert samples[(f"{prefix}_revision_duration_seconds", (("revision", "0002"),))] == 1.75
    assert samples[(f"{prefix}_safety_findings", (("rule", "drop-column"),))] == 2
    assert samples[(f"{prefix}_migration_child_ran", ())] == 1
    info = (
        ("command", "serve"),
        ("lock_holder", "pid 9 ('other')"),
        ("outcome", "migrated"),
        ("schema_revision", "0002"),
    )
    assert samples[(f"{prefix}_start_info", info)] == 1


def test_no_report_registers_nothing() -> None:
    """A process the launcher did not start: None, and the registry stays empty."""
    registry = CollectorRegistry()
    assert register_start_report(registry, environ={}) is None
    assert generate_latest(registry) == b""


def test_a_report_that_is_not_one_is_refused() -> None:
    """A variable that holds no report is a ValueError, not gauges made up."""
    with pytest.raises(ValueError, match=START_REPORT):
        register_start_report(CollectorRegistry(), environ={START_REPORT: "{"})
