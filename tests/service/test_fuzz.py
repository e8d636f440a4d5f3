"""Property-based fuzzing of every operation in the app's own OpenAPI document.

Schemathesis generates valid and invalid requests for each operation and sends them to the
real service (started by the real launcher on PostgreSQL): no 5xx, and every response must
match the documented status codes, content types and schemas. Emails come from schemathesis's
own `format: email` generator: what the document calls an email, the service accepts.

The stateful test follows the document's links (POST /users 201 -> GET, PATCH, DELETE by the
new id), so reads, changes and deletes meet users that exist.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

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


def test_linked_operations_conform(live_service: str) -> None:
    """Create, then read, change and delete the created user, as the links say: all conform."""

    class Users(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"base_url": live_service}

    assert {"GetUser", "UpdateUser", "DeleteUser"} <= _links_of_create()
    Users.run(
        settings=settings(
            max_examples=25,
            stateful_step_count=5,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
    )


def _links_of_create() -> set[str]:
    return set(schema.raw_schema["paths"]["/users"]["post"]["responses"]["201"]["links"])
