"""Bad input gets a 4xx JSON answer, never a 500 or a trace."""

import contextlib
import socket
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.support.processes import Launcher, launcher_env
from tests.support.urls import DatabaseURL


def _assert_clean_4xx(response, expected: int | None = None) -> None:  # type: ignore[no-untyped-def]
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:200])
    if expected is not None:
        assert response.status_code == expected, response.text[:200]
    assert response.headers["content-type"].startswith("application/json")
    assert "Traceback" not in response.text


def test_deeply_nested_json_is_rejected(client: TestClient) -> None:
    """30,000 levels of nesting (within the size limit) is a 4xx, not a RecursionError 500."""
    body = b"[" * 30000 + b"]" * 30000
    _assert_clean_4xx(
        client.post("/users", content=body, headers={"content-type": "application/json"})
    )


@pytest.mark.parametrize(
    "body",
    [b"{", b'{"name": "a", "email": ', b"\xff\xfe", b"null", b"[]", b'"text"', b"1e999999"],
)
def test_malformed_json_is_422(client: TestClient, body: bytes) -> None:
    """Truncated, non-UTF-8, or non-object JSON bodies are 422."""
    _assert_clean_4xx(
        client.post("/users", content=body, headers={"content-type": "application/json"}), 422
    )


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "multipart/form-data"])
def test_wrong_content_type_is_rejected(client: TestClient, content_type: str) -> None:
    """A body that is not declared as JSON is a 4xx."""
    body = b'{"name": "a", "email": "a@example.com"}'
    _assert_clean_4xx(client.post("/users", content=body, headers={"content-type": content_type}))


@pytest.mark.parametrize("user_id", ["-1", "0", str(2**63), str(10**100), "1.5", "%00", "NaN"])
def test_odd_ids_are_4xx(client: TestClient, user_id: str) -> None:
    """Huge, negative, fractional and garbage ids are 4xx on every id route."""
    for method in ("GET", "PATCH", "DELETE"):
        response = client.request(method, f"/users/{user_id}", json={"name": "x"})
        _assert_clean_4xx(response)


@pytest.mark.parametrize("after", ["-5", "abc", str(2**64), "1;DROP TABLE users", "%27"])
def test_tampered_cursors_are_422(client: TestClient, after: str) -> None:
    """A pagination cursor that was tampered with is 422."""
    _assert_clean_4xx(client.get(f"/users?after={after}"), 422)


def test_unicode_names_and_emails_round_trip(client: TestClient) -> None:
    """Non-ASCII names and internationalised emails are stored and returned intact."""
    for name, email in (
        ("Zoë Ångström", "zoe@example.com"),
        ("李小龍 🐉", "xiaolong@例子.广告"),
        ("Ṁüłłęř", "müller@bücher.example"),
    ):
        response = client.post("/users", json={"name": name, "email": email})
        assert response.status_code == 201, response.text
        user = response.json()
        assert user["name"] == name
        assert client.get(f"/users/{user['id']}").json()["name"] == name


@pytest.mark.parametrize("name", ["a\x00b", "tab\there", "\x1b[31mred", "line\nbreak"])
def test_control_characters_in_names_are_422(client: TestClient, name: str) -> None:
    """NUL and other control characters are rejected before the database sees them."""
    _assert_clean_4xx(client.post("/users", json={"name": name, "email": "c@example.com"}), 422)


def test_overlong_email_is_422(client: TestClient) -> None:
    """An email longer than the column is 422, not a database error."""
    email = "a" * 64 + "@" + ".".join(["b" * 63] * 5) + ".com"
    _assert_clean_4xx(client.post("/users", json={"name": "x", "email": email}), 422)


def test_oversized_body_with_content_length_is_413(client: TestClient) -> None:
    """A declared body over the limit is refused with 413 before it is read."""
    body = b'{"name": "' + b"x" * (100 * 1024) + b'", "email": "a@example.com"}'
    _assert_clean_4xx(
        client.post("/users", content=body, headers={"content-type": "application/json"}), 413
    )


def test_oversized_chunked_body_is_413_without_reading_it_whole(
    sqlite_url: DatabaseURL, port: int, tmp_path: Path
) -> None:
    """A chunked body with no Content-Length is cut off with 413 once it passes the limit."""
    launcher = Launcher(
        ["--port", str(port)], env=launcher_env(sqlite_url), log_path=tmp_path / "out"
    )
    try:
        launcher.wait_http(port)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
            connection.sendall(
                b"POST /users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            chunk = b"x" * 16384
            sent = 0
            response = b""
            try:
                # Far more than the limit; the server must answer long before the end.
                for _ in range(64 * 10):
                    connection.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    sent += len(chunk)
                    connection.settimeout(0.001)
                    with contextlib.suppress(TimeoutError):
                        response += connection.recv(4096)
                    connection.settimeout(10)
                    if response:
                        break
            except (BrokenPipeError, ConnectionResetError):
                pass
            if not response:
                response = connection.recv(4096)
        assert response.startswith(b"HTTP/1.1 413"), response[:100]
        assert sent < 10 * 1024 * 1024
    finally:
        launcher.stop()
