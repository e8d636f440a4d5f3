"""Property-based fuzzing of every operation in the app's own OpenAPI document.

Schemathesis generates valid and invalid requests for each operation and sends them to the
real service (started by the real launcher on PostgreSQL): no 5xx, and every response must
match the documented status codes, content types and schemas.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from service.database_url import DatabaseURL
from service.main import create_app
from tests import postgres
from tests.conftest import free_port
from tests.processes import Launcher, launcher_env


@pytest.fixture(scope="module")
def live_service(
    postgres_admin: DatabaseURL, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    url = postgres.create_database(postgres_admin)
    port = free_port()
    log = tmp_path_factory.mktemp("fuzz") / "out"
    launcher = Launcher(["--port", str(port)], env=launcher_env(url), log_path=log)
    try:
        launcher.wait_http(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        launcher.stop()
        postgres.drop_database(postgres_admin, url)
    assert "Traceback" not in Path(log).read_text(), "the service logged a traceback"


# `format: email` in OpenAPI admits addresses that a real check refuses (reserved domains such
# as .test or .local): generate addresses on ordinary domains, so "valid" means valid here too.
schemathesis.openapi.format(
    "email",
    st.emails(domains=st.sampled_from(["example.com", "example.org", "mail.example.net"])),
)

# The document comes from the app object itself (no server needed to collect the tests);
# the requests go to the live service.
schema = schemathesis.openapi.from_dict(create_app().openapi())


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_every_operation_conforms(case: schemathesis.Case, live_service: str) -> None:
    """No 5xx, and every response matches the OpenAPI document."""
    case.call_and_validate(base_url=live_service)
