"""GET /metrics: requests by route template, pool use, store errors, in Prometheus' format."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from service.main import create_app
from service.settings import get_settings
from tests.support.urls import DatabaseURL

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: TestClient) -> Samples:
    """Every sample of /metrics, read with prometheus_client's parser."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def requests(samples: Samples, route: str, method: str, status: int) -> float:
    labels = (("method", method), ("route", route), ("status", str(status)))
    return samples.get(("http_requests_total", labels), 0.0)


def test_requests_are_counted_by_route_template(client: TestClient) -> None:
    """Counts and latencies by template, method and status; ids never become labels."""
    before = scrape(client)
    created = client.post("/users", json={"name": "Ada", "email": "ada@example.com"}).json()
    for _ in range(3):
        assert client.get(f"/users/{created['id']}").status_code == 200
    assert client.get("/users/999999").status_code == 404
    after = scrape(client)
    assert requests(after, "/users", "POST", 201) - requests(before, "/users", "POST", 201) == 1
    template = "/users/{user_id}"
    assert requests(after, template, "GET", 200) - requests(before, template, "GET", 200) == 3
    assert requests(after, template, "GET", 404) - requests(before, template, "GET", 404) == 1
    labels = (("method", "GET"), ("route", template), ("status", "200"))
    count = after[("http_request_duration_seconds_count", labels)]
    assert count == requests(after, template, "GET", 200)
    assert after[("http_request_duration_seconds_sum", labels)] > 0
    raw_path = f"/users/{created['id']}"
    assert not [key for key in after if ("route", raw_path) in key[1]]
    assert after[("http_requests_in_flight", ())] == 0


def test_unmatched_paths_and_odd_methods_share_one_label(client: TestClient) -> None:
    """Unknown paths are route="unmatched", unknown methods OTHER; errors stay JSON."""
    before = scrape(client)
    for path in ("/nope", "/wp-admin.php", "/users/1/extra"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json() == {"detail": "Not Found"}
    assert client.request("BREW", "/users").status_code == 405
    after = scrape(client)
    unmatched = requests(after, "unmatched", "GET", 404) - requests(before, "unmatched", "GET", 404)
    assert unmatched == 3
    assert requests(after, "/users", "OTHER", 405) - requests(before, "/users", "OTHER", 405) == 1


def test_metrics_itself_is_not_counted(client: TestClient) -> None:
    """Scraping does not count as a request."""
    scrape(client)
    assert not [key for key in scrape(client) if ("route", "/metrics") in key[1]]


def test_pool_use_is_exposed(client: TestClient, migrated_url: DatabaseURL) -> None:
    """Open connections and the most allowed, by backend; in use on PostgreSQL."""
    client.get("/users/1")
    samples = scrape(client)
    backend = (("backend", "sqlite" if migrated_url.is_sqlite else "postgresql"),)
    assert samples[("users_db_pool_connections", backend)] >= 1
    maximum = 2 if migrated_url.is_sqlite else get_settings().database_pool_size
    assert samples[("users_db_pool_max_connections", backend)] == maximum
    if not migrated_url.is_sqlite:
        assert samples[("users_db_pool_connections_in_use", backend)] == 0


@pytest.fixture
def unmigrated_client(
    sqlite_url: DatabaseURL, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    monkeypatch.setenv("DATABASE_URL", sqlite_url.url)
    get_settings.cache_clear()
    try:
        with TestClient(create_app(), raise_server_exceptions=False) as test_client:
            yield test_client
    finally:
        get_settings.cache_clear()


def test_store_errors_are_counted_by_cause(unmigrated_client: TestClient) -> None:
    """A schema not migrated: 503 as before, counted under cause="not_migrated"."""
    before = scrape(unmigrated_client)
    response = unmigrated_client.get("/users/1")
    assert response.status_code == 503
    assert response.json() == {"detail": "database schema not migrated"}
    after = scrape(unmigrated_client)
    key = ("users_store_errors_total", (("cause", "not_migrated"),))
    assert after[key] - before[key] == 1
    assert after[("users_store_errors_total", (("cause", "storage_full"),))] >= 0


def test_metrics_can_be_turned_off(
    migrated_url: DatabaseURL, monkeypatch: pytest.MonkeyPatch
) -> None:
    """METRICS_ENABLED=false: no /metrics route (a JSON 404), the API unchanged."""
    monkeypatch.setenv("DATABASE_URL", migrated_url.url)
    monkeypatch.setenv("METRICS_ENABLED", "false")
    get_settings.cache_clear()
    try:
        with TestClient(create_app(), raise_server_exceptions=False) as client:
            response = client.get("/metrics")
            assert response.status_code == 404
            assert response.json() == {"detail": "Not Found"}
            assert client.get("/healthz").status_code == 200
    finally:
        get_settings.cache_clear()
