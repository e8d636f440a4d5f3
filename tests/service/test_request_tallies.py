"""service/request_tallies.py: the request counts, per worker and summed over the workers."""

from __future__ import annotations

import json
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from service.request_tallies import RequestTallies

BOUNDS = (0.01, 0.1, 1.0)


class Route:
    path_format = "/users/{user_id}"


def samples(tallies: RequestTallies) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """What /metrics would show, read back with prometheus_client's parser."""
    registry = CollectorRegistry()
    registry.register(tallies)
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def labels(**extra: str) -> tuple[tuple[str, str], ...]:
    found = {"route": "/users/{user_id}", "method": "GET", "status": "200", **extra}
    return tuple(sorted(found.items()))


def test_a_duration_on_a_bound_counts_in_that_bucket_and_every_one_above() -> None:
    tallies = RequestTallies(BOUNDS, None)
    route = Route()
    for seconds in (0.005, 0.01, 0.5, 3.0):
        tallies.add(route, "GET", 200, seconds)
    found = samples(tallies)
    assert found[("http_requests_total", labels())] == 4
    bucket = "http_request_duration_seconds_bucket"
    assert found[(bucket, labels(le="0.01"))] == 2  # 0.005 and exactly 0.01
    assert found[(bucket, labels(le="0.1"))] == 2
    assert found[(bucket, labels(le="1.0"))] == 3
    assert found[(bucket, labels(le="+Inf"))] == 4
    assert found[("http_request_duration_seconds_count", labels())] == 4
    assert found[("http_request_duration_seconds_sum", labels())] == 3.515


def test_requests_no_route_matched_share_one_label() -> None:
    tallies = RequestTallies(BOUNDS, None)
    tallies.add(None, "GET", 404, 0.001)
    tallies.add(None, "GET", 404, 0.001)
    found = samples(tallies)
    assert found[("http_requests_total", labels(route="unmatched", status="404"))] == 2


def test_two_routes_of_one_template_shape_are_counted_apart() -> None:
    tallies = RequestTallies(BOUNDS, None)

    class Other:
        path_format = "/other"

    tallies.add(Route(), "GET", 200, 0.001)  # not freed: the tally keeps it, and its id
    tallies.add(Other(), "GET", 200, 0.001)
    found = samples(tallies)
    assert found[("http_requests_total", labels())] == 1
    assert found[("http_requests_total", labels(route="/other"))] == 1


def test_the_workers_files_are_summed_with_this_workers_own_counts(tmp_path: Path) -> None:
    route = Route()
    other_worker = RequestTallies(BOUNDS, tmp_path, worker="1-100")
    for _ in range(3):
        other_worker.add(route, "GET", 200, 0.05)
    other_worker.add(route, "POST", 201, 0.05)
    other_worker.save()
    this_worker = RequestTallies(BOUNDS, tmp_path, worker="2-200")
    this_worker.add(route, "GET", 200, 0.5)
    this_worker.save()
    this_worker.add(route, "GET", 200, 0.5)  # not saved yet: its memory is what counts
    found = samples(this_worker)
    assert found[("http_requests_total", labels())] == 5
    assert found[("http_requests_total", labels(method="POST", status="201"))] == 1
    assert found[("http_request_duration_seconds_bucket", labels(le="0.1"))] == 3
    assert found[("http_request_duration_seconds_sum", labels())] == 1.15


def test_a_worker_with_a_dead_workers_pid_keeps_its_counts_apart(tmp_path: Path) -> None:
    dead = RequestTallies(BOUNDS, tmp_path, worker="7-100")
    dead.add(Route(), "GET", 200, 0.001)
    dead.save()
    reborn = RequestTallies(BOUNDS, tmp_path, worker="7-900")  # the same pid, started later
    reborn.add(Route(), "GET", 200, 0.001)
    reborn.save()
    assert samples(reborn)[("http_requests_total", labels())] == 2


def test_unreadable_or_foreign_files_are_left_out(tmp_path: Path) -> None:
    (tmp_path / "requests-1.json").write_text("{not json")
    (tmp_path / "requests-3.json").write_text("[1, 2]")
    (tmp_path / "requests-4.json").write_text('{"bounds": [0.01, 0.1, 1.0]}')
    other_bounds = {"bounds": [5.0], "series": [["/users/{user_id}", "GET", "200", [7, 0], 1.0]]}
    (tmp_path / "requests-2.json").write_text(json.dumps(other_bounds))
    tallies = RequestTallies(BOUNDS, tmp_path)
    tallies.add(Route(), "GET", 200, 0.001)
    assert samples(tallies)[("http_requests_total", labels())] == 1


def test_a_worker_alone_writes_no_file(tmp_path: Path) -> None:
    tallies = RequestTallies(BOUNDS, None)
    tallies.add(Route(), "GET", 200, 0.001)
    tallies.save()
    assert not list(tmp_path.iterdir())
