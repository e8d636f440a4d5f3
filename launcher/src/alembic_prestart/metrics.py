"""The launcher's start report as Prometheus metrics, for the app it started.

    from alembic_prestart.metrics import register_start_report

    register_start_report()          # on prometheus_client's default registry
    register_start_report(registry)  # or on the registry your /metrics serves

Needs the `metrics` extra (`pip install 'alembic-prestart[metrics]'`, prometheus_client); the
launcher itself never imports this module. The report is the one the launcher handed the
process in ALEMBIC_PRESTART_START_REPORT (observe/report.py), so it is the same in every
uvicorn worker, and it is served from memory by a collector, not through prometheus_client's
multiprocess files: under multiprocess mode, register it on the registry that holds the
MultiProcessCollector. Each value is a gauge, fixed for the life of the process:

    alembic_prestart_start_info{command,outcome,schema_revision,lock_holder}  1
    alembic_prestart_start_timestamp_seconds           when the launcher started (Unix time)
    alembic_prestart_phase_duration_seconds{phase}     wait_for_database, wait_for_lock,
                                                       migrate, read_back, total
    alembic_prestart_lock_wait_seconds                 only when the launcher took the lock
    alembic_prestart_revision_duration_seconds{revision}
    alembic_prestart_safety_findings{rule}
    alembic_prestart_migration_child_ran               1 or 0
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping

try:
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.metrics_core import GaugeMetricFamily, Metric
    from prometheus_client.registry import Collector
except ImportError as error:  # pragma: no cover - depends on the install
    raise ImportError(
        "alembic_prestart.metrics needs prometheus_client: pip install 'alembic-prestart[metrics]'"
    ) from error

from alembic_prestart.observe.report import START_REPORT, StartReport

PREFIX = "alembic_prestart"

__all__ = ["START_REPORT", "StartReportCollector", "register_start_report"]


class StartReportCollector(Collector):
    """The gauges of one start report."""

    def __init__(self, report: StartReport) -> None:
        self.report = report

    def describe(self) -> list[Metric]:
        return list(self.collect())

    def collect(self) -> Iterator[Metric]:
        report = self.report
        info = GaugeMetricFamily(
            f"{PREFIX}_start_info",
            "The launcher's start of this process: its command and outcome, the database's "
            "revision once it was done, and the session it waited on for the migration lock.",
            labels=["command", "outcome", "schema_revision", "lock_holder"],
        )
        info.add_metric(
            [
                report.command,
                report.outcome or "",
                report.schema_revision or "",
                report.lock_holder or "",
            ],
            1,
        )
        yield info
        yield GaugeMetricFamily(
            f"{PREFIX}_start_timestamp_seconds",
            "When the launcher started this process, in seconds since the Unix epoch.",
            value=report.started_at,
        )
        phases = GaugeMetricFamily(
            f"{PREFIX}_phase_duration_seconds",
            "Seconds each phase of the start took (total: until the server started).",
            labels=["phase"],
        )
        for phase, seconds in report.phases.items():
            phases.add_metric([phase], seconds)
        yield phases
        if report.lock_wait_seconds is not None:
            yield GaugeMetricFamily(
                f"{PREFIX}_lock_wait_seconds",
                "Seconds the launcher waited for the migration lock.",
                value=report.lock_wait_seconds,
            )
        revisions = GaugeMetricFamily(
            f"{PREFIX}_revision_duration_seconds",
            "Seconds each revision took to apply at this start.",
            labels=["revision"],
        )
        for timing in report.revisions:
            revisions.add_metric([timing.revision], timing.seconds)
        yield revisions
        findings = GaugeMetricFamily(
            f"{PREFIX}_safety_findings",
            "Unsafe statements the migration-safety analysis found at this start, by rule.",
            labels=["rule"],
        )
        for rule, count in sorted(report.findings.items()):
            findings.add_metric([rule], count)
        yield findings
        yield GaugeMetricFamily(
            f"{PREFIX}_migration_child_ran",
            "1 if the launcher ran the Alembic child at this start, else 0.",
            value=1 if report.child_ran else 0,
        )


def register_start_report(
    registry: CollectorRegistry | None = None, *, environ: Mapping[str, str] | None = None
) -> StartReport | None:
    """Register the start report the launcher handed this process as gauges on `registry`
    (prometheus_client's default one if None), and return it; None, registering nothing, when
    the process was not started by the launcher. ValueError if the variable holds no report."""
    report = StartReport.from_environment(os.environ if environ is None else environ)
    if report is not None:
        (REGISTRY if registry is None else registry).register(StartReportCollector(report))
    return report
