"""The users resource."""

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from pydantic import BeforeValidator

from service.dependencies import StoreDep
from service.schemas import ErrorMessage, User, UserCreate, UserPage, UserUpdate
from service.store import EmailTaken

Responses = dict[int | str, dict[str, Any]]
# Answers any users route may give besides its own: documented so clients can rely on them.
COMMON_RESPONSES: Responses = {
    400: {"model": ErrorMessage, "description": "The body could not be parsed."},
    413: {"model": ErrorMessage, "description": "The body is larger than the limit."},
    503: {
        "model": ErrorMessage,
        "description": "The database failed: 'database unavailable: <cause>' (Retry-After when "
        "the cause passes by itself), or 'database schema not migrated'.",
    },
    507: {"model": ErrorMessage, "description": "The database's storage is full."},
}
router = APIRouter(prefix="/users", tags=["users"], responses=COMMON_RESPONSES)

MAX_ID = 2**63 - 1
MAX_PAGE_SIZE = 100

PLAIN_INTEGER = "^[0-9]+$"


def _plain_integer(value: object) -> object:
    # Ids and cursors arrive as text, and int parsing also takes "1.0", "1_000" and " 1": one
    # value, one spelling.
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError("must be a plain integer: decimal digits only")
    return value


UserId = Annotated[
    int,
    Path(
        ge=1, le=MAX_ID, description="The user's id.", json_schema_extra={"pattern": PLAIN_INTEGER}
    ),
    BeforeValidator(_plain_integer),
]
Cursor = Annotated[
    int,
    Query(
        ge=0,
        le=MAX_ID,
        description="Last id of the previous page (its next_after), as decimal digits.",
        json_schema_extra={"pattern": PLAIN_INTEGER},
    ),
    BeforeValidator(_plain_integer),
]
_NOT_FOUND: Responses = {404: {"description": "No user with this id."}}
_CONFLICT: Responses = {409: {"description": "The email belongs to another user."}}
# OpenAPI links: what a client (and the stateful fuzzing) may do with a user it has created.
_BY_ID = {"user_id": "$response.body#/id"}
_CREATED: Responses = {
    201: {
        "links": {
            "GetUser": {"operationId": "get_user", "parameters": _BY_ID},
            "UpdateUser": {"operationId": "update_user", "parameters": _BY_ID},
            "DeleteUser": {"operationId": "delete_user", "parameters": _BY_ID},
        }
    }
}


def _not_found() -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, "user not found")


EMAIL_TAKEN = {"detail": "email already registered"}


def _email_taken() -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT, EMAIL_TAKEN["detail"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=User,
    responses={**_CREATED, **_CONFLICT},
    operation_id="create_user",
)
async def create_user(body: UserCreate, store: StoreDep) -> dict[str, Any]:
    """Create a user."""
    try:
        return await store.create(body.model_dump())
    except EmailTaken:
        raise _email_taken() from None


@router.get("", response_model=UserPage, operation_id="list_users")
async def list_users(
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
    after: Cursor = 0,
) -> dict[str, Any]:
    """List users in id order, a page at a time."""
    items = await store.list(after, limit)
    next_after = items[-1]["id"] if len(items) == limit else None
    return {"items": items, "next_after": next_after}


@router.get("/{user_id}", response_model=User, responses=_NOT_FOUND, operation_id="get_user")
async def get_user(user_id: UserId, store: StoreDep) -> dict[str, Any]:
    """Read one user."""
    user = await store.get(user_id)
    if user is None:
        raise _not_found()
    return user


@router.patch(
    "/{user_id}",
    response_model=User,
    responses={**_NOT_FOUND, **_CONFLICT},
    operation_id="update_user",
)
async def update_user(user_id: UserId, body: UserUpdate, store: StoreDep) -> dict[str, Any]:
    """Change the fields sent (null clears a nullable field); keep the others."""
    try:
        user = await store.update(user_id, body.model_dump(exclude_unset=True))
    except EmailTaken:
        raise _email_taken() from None
    if user is None:
        raise _not_found()
    return user


@router.delete(
    "/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_NOT_FOUND,
    operation_id="delete_user",
)
async def delete_user(user_id: UserId, store: StoreDep) -> Response:
    """Delete a user."""
    if not await store.delete(user_id):
        raise _not_found()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
