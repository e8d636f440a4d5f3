"""The users API on both backends: every route, every status code of the contract."""

from fastapi.testclient import TestClient


def _create(client: TestClient, name: str = "Ada", email: str = "ada@example.com") -> dict:
    response = client.post("/users", json={"name": name, "email": email})
    assert response.status_code == 201, response.text
    return response.json()


def test_create_returns_201_with_the_user(client: TestClient) -> None:
    """POST /users answers 201 with id, name, email and created_at."""
    user = _create(client)
    assert set(user) == {"id", "name", "email", "created_at"}
    assert (user["name"], user["email"]) == ("Ada", "ada@example.com")
    assert user["created_at"].endswith(("Z", "+00:00"))


def test_create_with_taken_email_is_409(client: TestClient) -> None:
    """A second user with the same email gets 409 from the unique constraint."""
    _create(client)
    response = client.post("/users", json={"name": "Other", "email": "ada@example.com"})
    assert response.status_code == 409
    assert response.json() == {"detail": "email already registered"}


def test_create_rejects_invalid_input_with_422(client: TestClient) -> None:
    """Bad emails, empty or over-long names and unknown fields are 422."""
    for body in (
        {"name": "Ada", "email": "not-an-email"},
        {"name": "", "email": "a@example.com"},
        {"name": "x" * 101, "email": "a@example.com"},
        {"name": "Ada"},
        {"name": "Ada", "email": "a@example.com", "admin": True},
    ):
        assert client.post("/users", json=body).status_code == 422, body


def test_get_returns_200_or_404(client: TestClient) -> None:
    """GET /users/{id} finds a created user and 404s on an unknown id."""
    user = _create(client)
    assert client.get(f"/users/{user['id']}").json() == user
    assert client.get("/users/999999").status_code == 404


def test_get_rejects_ids_out_of_range_with_422(client: TestClient) -> None:
    """Negative, zero, non-numeric and over-64-bit ids are 422, not 500."""
    for user_id in ("-1", "0", "abc", str(2**63), "1e3"):
        assert client.get(f"/users/{user_id}").status_code == 422, user_id


def test_list_pages_through_users_in_id_order(client: TestClient) -> None:
    """GET /users walks every user once, by keyset, a bounded page at a time."""
    created = [_create(client, f"u{i}", f"u{i}@example.com")["id"] for i in range(5)]
    seen, after = [], 0
    while True:
        page = client.get("/users", params={"limit": 2, "after": after}).json()
        seen += [user["id"] for user in page["items"]]
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert seen == created


def test_list_bounds_the_limit(client: TestClient) -> None:
    """limit outside 1..100 and a negative cursor are 422."""
    for params in ({"limit": 0}, {"limit": 101}, {"after": -1}, {"after": "x"}):
        assert client.get("/users", params=params).status_code == 422, params


def test_patch_changes_fields(client: TestClient) -> None:
    """PATCH changes the given fields and keeps the others."""
    user = _create(client)
    response = client.patch(f"/users/{user['id']}", json={"name": "Grace"})
    assert response.status_code == 200
    assert response.json() == {**user, "name": "Grace"}


def test_patch_status_codes(client: TestClient) -> None:
    """PATCH: 404 unknown id, 409 taken email, 422 invalid input."""
    first = _create(client)
    _create(client, "Bob", "bob@example.com")
    assert client.patch("/users/999999", json={"name": "X"}).status_code == 404
    taken = client.patch(f"/users/{first['id']}", json={"email": "bob@example.com"})
    assert taken.status_code == 409
    assert client.patch(f"/users/{first['id']}", json={"email": "nope"}).status_code == 422


def test_delete_returns_204_then_404(client: TestClient) -> None:
    """DELETE removes the user: 204 once, then 404."""
    user = _create(client)
    assert client.delete(f"/users/{user['id']}").status_code == 204
    assert client.get(f"/users/{user['id']}").status_code == 404
    assert client.delete(f"/users/{user['id']}").status_code == 404


def test_errors_are_json(client: TestClient) -> None:
    """Unknown routes and malformed bodies answer JSON, never HTML or a trace."""
    for response in (
        client.get("/nowhere"),
        client.post("/users", content=b"{not json", headers={"content-type": "application/json"}),
    ):
        assert response.headers["content-type"].startswith("application/json")
        assert "Traceback" not in response.text


def test_emails_that_normalise_alike_are_one_user(client: TestClient) -> None:
    """Role-account spellings (INFO@, info@, Info@Example.com) are one user: 201, then 409s."""
    user = _create(client, "Info", "INFO@example.com")
    assert user["email"] == "info@example.com"
    for spelling in ("info@example.com", "Info@Example.com"):
        response = client.post("/users", json={"name": "Other", "email": spelling})
        assert response.status_code == 409, (spelling, response.text)
    other = _create(client, "Bob", "bob@example.com")
    taken = client.patch(f"/users/{other['id']}", json={"email": "INFO@EXAMPLE.COM"})
    assert taken.status_code == 409


def test_local_parts_keep_their_case_outside_role_accounts(client: TestClient) -> None:
    """Ada@ and ada@ are two addresses (email-validator keeps the local part's case)."""
    assert _create(client, "A", "Ada@Example.com")["email"] == "Ada@example.com"
    assert _create(client, "B", "ada@example.com")["email"] == "ada@example.com"


def test_patch_null_for_a_not_null_field_is_422_and_changes_nothing(client: TestClient) -> None:
    """{"name": null} and {"email": null} are refused (the columns are NOT NULL), not ignored."""
    user = _create(client)
    for body in ({"name": None}, {"email": None}, {"name": "Grace", "email": None}):
        response = client.patch(f"/users/{user['id']}", json=body)
        assert response.status_code == 422, (body, response.text)
        [error] = response.json()["detail"]
        assert error["loc"] == ["body", next(k for k, v in body.items() if v is None)]
    assert client.get(f"/users/{user['id']}").json() == user


def test_patch_leaves_the_fields_left_out_alone(client: TestClient) -> None:
    """A field left out keeps its value; an empty PATCH answers the user unchanged (or 404)."""
    user = _create(client)
    changed = client.patch(f"/users/{user['id']}", json={"email": "grace@example.com"}).json()
    assert changed == {**user, "email": "grace@example.com"}
    assert client.patch(f"/users/{user['id']}", json={}).json() == changed
    assert client.patch("/users/999999", json={}).status_code == 404


def test_ids_are_never_reused_after_deleting_the_newest(client: TestClient) -> None:
    """Deleting the user with the highest id, then creating one, gives a new id."""
    _create(client, "A", "a@example.com")
    newest = _create(client, "B", "b@example.com")
    assert client.delete(f"/users/{newest['id']}").status_code == 204
    assert _create(client, "C", "c@example.com")["id"] > newest["id"]
