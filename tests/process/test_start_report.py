"""The start report: one log line per start, and the gauges /metrics serves summed over workers."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import pytest
from alembic_prestart.lock.core import advisory_lock_key
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.support.processes import Launcher, http_json, launcher_env, wait_for_output
from tests.support.revisions import HEAD, add_revision
from tests.support.urls import DEFAULT_SCHEMA, DatabaseURL

# Real processes, servers or clusters: left out of the quick run (-m "not slow").
pytestmark = pytest.mark.slow

HOLDER = "test lock holder"


class AdvisoryLockHolder:
    """Another session holding the launcher's migration lock until released."""

    def __init__(self, url: DatabaseURL) -> None:
        self.loop = asyncio.new_event_loop()
        self.connection = self.loop.run_until_complete(
            asyncpg.connect(url.asyncpg_dsn(), server_settings={"application_name": HOLDER})
        )
        key = advisory_lock_key(url.database, DEFAULT_SCHEMA)
        self.loop.run_until_complete(self.connection.execute(f"SELECT pg_advisory_lock({key})"))

    def release(self) -> None:
        self.loop.run_until_complete(self.connection.close())  # the lock goes with the session
        self.loop.close()


def report_of(output: str) -> dict:
    """The JSON of the one `start report:` line in a text-mode output."""
    (line,) = [line for line in output.splitlines() if "start report: " in line]
    return json.loads(line.split("start report: ", 1)[1])


def scrape(port: int) -> dict[str, list[Sample]]:
    """/metrics read with prometheus_client's own parser: samples by family name."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def value(samples: list[Sample], name: str, **labels: str) -> float:
    (found,) = [s.value for s in samples if s.name == name and s.labels == labels]
    return found


def test_two_workers_serve_the_start_report_and_summed_requests(
    postgres_url: DatabaseURL, tmp_path: Path, project_copy: Path, port: int
) -> None:
    """One pending revision behind a held lock, 2 workers: /metrics has the revision's duration,
    the lock wait and its holder, and per-route counts that add up across the workers."""
    migrate = Launcher(
        ["migrate"], env=launcher_env(postgres_url), root=project_copy, log_path=tmp_path / "0"
    )
    assert migrate.wait() == 0, migrate.output
    add_revision(project_copy, "0002", HEAD, "time.sleep(0.5)")
    metrics_dir = tmp_path / "metrics"
    stale = metrics_dir / "users-service-metrics-999999-1"  # a finished start's leftovers
    stale.mkdir(parents=True)
    holder = AdvisoryLockHolder(postgres_url)
    try:
        launcher = Launcher(
            ["--port", str(port), "--workers", "2"],
            env=launcher_env(postgres_url, METRICS_DIR=str(metrics_dir)),
            root=project_copy,
            log_path=tmp_path / "1",
        )
        wait_for_output(launcher, "waiting for the migration lock")
        time.sleep(1.0)
    finally:
        holder.release()
    try:
        assert launcher.wait_http(port, timeout=60) == 200
        deadline = time.monotonic() + 30
        while launcher.output.count("Application startup complete") < 2:
            assert time.monotonic() < deadline, launcher.output
            time.sleep(0.05)
        sent = {"GET": 0, "POST": 0}

        def create_and_read(index: int) -> None:
            body = json.dumps({"name": "Ada", "email": f"ada{index}@example.com"}).encode()
            status, answer = http_json(port, "POST", "/users", body)
            assert status == 201, answer
            status, answer = http_json(port, "GET", f"/users/{json.loads(answer)['id']}")
            assert status == 200, answer

        # Fresh connections, several at once, until each worker has answered some.
        with ThreadPoolExecutor(8) as pool:
            for _ in range(20):
                batch = range(sent["POST"], sent["POST"] + 16)
                list(pool.map(create_and_read, batch))
                sent["GET"] += len(batch)
                sent["POST"] += len(batch)
                (directory,) = metrics_dir.iterdir()
                time.sleep(1.1)  # each worker writes its counts every second
                if len(list(directory.glob("requests-*.json"))) == 2:
                    break
        assert len(list(directory.glob("requests-*.json"))) == 2, "one worker answered everything"
        time.sleep(1.5)  # each worker publishes its counts, pool and in-flight every second
        scrapes = [scrape(port) for _ in range(4)]  # whichever worker answers, the same sums
    finally:
        launcher.stop()
    assert not stale.exists()
    report = report_of(launcher.output)
    assert report["outcome"] == "migrated" and report["child_ran"] is True
    for families in scrapes:
        requests = families["http_requests"]
        total = "http_requests_total"
        assert value(requests, total, route="/users", method="POST", status="201") == sent["POST"]
        assert (
            value(requests, total, route="/users/{user_id}", method="GET", status="200")
            == sent["GET"]
        )
        assert not [s for s in requests if s.labels["route"].startswith("/users/1")]
        assert families["http_requests_in_flight"][0].value == 0
        pool = {s.name: s.value for s in families["users_db_pool_connections"]}
        assert pool["users_db_pool_connections"] >= 2  # one worker's and the other's
        assert families["users_db_pool_max_connections"][0].value == 2 * 20
        revision = value(
            families["alembic_prestart_revision_duration_seconds"],
            "alembic_prestart_revision_duration_seconds",
            revision="0002",
        )
        assert revision >= 0.5
        assert revision == pytest.approx(report["revisions"][0]["seconds"])
        lock_wait = families["alembic_prestart_lock_wait_seconds"][0].value
        assert lock_wait >= 1.0
        assert lock_wait == pytest.approx(report["lock"]["wait_seconds"])
        (info,) = families["alembic_prestart_start_info"]
        assert HOLDER in info.labels["lock_holder"]
        assert info.labels["outcome"] == "migrated"
        assert info.labels["schema_revision"] == "0002"
        phases = families["alembic_prestart_phase_duration_seconds"]
        assert {s.labels["phase"] for s in phases} >= {
            "wait_for_database",
            "wait_for_lock",
            "migrate",
            "read_back",
            "total",
        }


def test_a_failed_start_reports_in_its_log_line(
    sqlite_url: DatabaseURL, tmp_path: Path, project_copy: Path, port: int
) -> None:
    """A failing revision: exit 3, and the report line names the outcome, exit code and the
    revision that did not finish."""
    add_revision(project_copy, "0002", HEAD, "raise RuntimeError('boom')")
    launcher = Launcher(
        ["--port", str(port)],
        env=launcher_env(sqlite_url),
        root=project_copy,
        log_path=tmp_path / "0",
    )
    assert launcher.wait() == 3, launcher.output
    report = report_of(launcher.output)
    assert (report["outcome"], report["exit_code"], report["child_ran"]) == ("failed", 3, True)
    assert report["revisions"][-1]["revision"] == "0002"
    assert report["revisions"][-1]["finished"] is False
    # The one error line stays the last word: the report comes before it.
    lines = launcher.output.splitlines()
    reported = next(i for i, line in enumerate(lines) if "start report: " in line)
    failed = next(i for i, line in enumerate(lines) if "ERROR migration failed" in line)
    assert reported < failed


def test_serve_after_a_release_step_found_the_schema_at_head(
    sqlite_url: DatabaseURL, tmp_path: Path, project_copy: Path, port: int
) -> None:
    """`migrate` reports the migration; the serve after it reports `at_head`, no child, and
    hands that to the app."""
    env = launcher_env(sqlite_url, LOG_FORMAT="json")
    release = Launcher(["migrate"], env=env, root=project_copy, log_path=tmp_path / "0")
    assert release.wait() == 0, release.output
    entries = [json.loads(line) for line in release.output.splitlines()]
    (released,) = [entry["report"] for entry in entries if "report" in entry]
    assert (released["command"], released["outcome"], released["exit_code"]) == (
        "migrate",
        "migrated",
        0,
    )
    launcher = Launcher(["--port", str(port)], env=env, root=project_copy, log_path=tmp_path / "1")
    try:
        assert launcher.wait_http(port) == 200
        families = scrape(port)
    finally:
        launcher.stop()
    (info,) = families["alembic_prestart_start_info"]
    assert (info.labels["command"], info.labels["outcome"]) == ("serve", "at_head")
    assert families["alembic_prestart_migration_child_ran"][0].value == 0
    assert "alembic_prestart_lock_wait_seconds" not in families  # SQLite: env.py's lock


def test_skipped_migrations_are_reported_as_skipped(
    sqlite_url: DatabaseURL, tmp_path: Path, project_copy: Path, port: int
) -> None:
    """--skip-migrations: outcome `skipped`, no wait, no child."""
    launcher = Launcher(
        ["--port", str(port), "--skip-migrations"],
        env=launcher_env(sqlite_url),
        root=project_copy,
        log_path=tmp_path / "0",
    )
    try:
        assert launcher.wait_http(port) == 200
    finally:
        launcher.stop()
    report = report_of(launcher.output)
    assert (report["outcome"], report["child_ran"]) == ("skipped", False)
    assert set(report["phases"]) == {"total"}


def test_findings_are_counted_by_rule(
    postgres_url: DatabaseURL, tmp_path: Path, project_copy: Path
) -> None:
    """--lint warn: the guard's finding in the child is counted under its rule."""
    migrate = Launcher(
        ["migrate"], env=launcher_env(postgres_url), root=project_copy, log_path=tmp_path / "0"
    )
    assert migrate.wait() == 0, migrate.output
    add_revision(project_copy, "0002", HEAD, 'op.create_index("ix_users_name", "users", ["name"])')
    launcher = Launcher(
        ["migrate"], env=launcher_env(postgres_url), root=project_copy, log_path=tmp_path / "1"
    )
    assert launcher.wait() == 0, launcher.output
    report = report_of(launcher.output)
    assert report["findings"] == {"create-index-not-concurrently": 1}
    assert report["lock"]["holder"] is None  # nobody held it: no wait to name
