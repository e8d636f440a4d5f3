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

from service.main import create_app
from tests.support import postgres
from tests.support.processes import Launcher, launcher_env
from tests.support.project import free_port
from tests.support.urls import DatabaseURL

# Real processes, servers or clusters: left out of the quick run (-m "not slow").
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def live_database(postgres_admin: DatabaseURL) -> Iterator[DatabaseURL]:
    url = postgres.create_database(postgres_admin)
    try:
        yield url
    finally:
        postgres.drop_database(postgres_admin, url)


@pytest.fixture(scope="module")
def live_service(
    live_database: DatabaseURL, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    url = live_database
    port = free_port()
    log = tmp_path_factory.mktemp("fuzz") / "out"
    launcher = Launcher(["--port", str(port)], env=launcher_env(url), log_path=log)
    try:
        launcher.wait_http(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        launcher.stop()
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


def test_linked_operations_conform(live_service: str, live_database: DatabaseURL) -> None:
    """Create, then read, change and delete the created user, as the links say: all conform."""

    class Users(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            # Each scenario starts from an empty table, so that a replayed scenario meets
            # the same answers (an email created by an earlier one would be a 409).
            postgres.execute(live_database, "TRUNCATE test_app.users RESTART IDENTITY")

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"base_url": live_service}

        def after_call(self, response: Any, case: schemathesis.Case) -> None:
            super().after_call(response, case)
            answers.add((case.method.upper(), case.path, response.status_code))

    answers: set[tuple[str, str, int]] = set()
    assert {"GetUser", "UpdateUser", "DeleteUser"} <= _links_of_create()
    Users.run(
        settings=settings(
            max_examples=25,
            stateful_step_count=5,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
    )
    # The links were followed: existing users were read, changed and deleted.
    assert {
        ("GET", "/users/{user_id}", 200),
        ("PATCH", "/users/{user_id}", 200),
        ("DELETE", "/users/{user_id}", 204),
    } <= answers, sorted(answers)


def _links_of_create() -> set[str]:
    return set(schema.raw_schema["paths"]["/users"]["post"]["responses"]["201"]["links"])
