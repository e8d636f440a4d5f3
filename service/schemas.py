"""Request and response bodies."""

from datetime import datetime
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
)
from pydantic.json_schema import SkipJsonSchema

from service.emails import RESERVED_DOMAINS, RESERVED_DOMAINS_PATTERN, normalise_email
from service.limits import EMAIL_MAX_LENGTH, NAME_MAX_LENGTH

Name = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        min_length=1,
        max_length=NAME_MAX_LENGTH,
        # No control characters (NUL above all: PostgreSQL text cannot hold it). A pattern,
        # not code, so that the OpenAPI document says so too. A pattern also refuses an
        # unpaired surrogate (JSON can smuggle "\ud800", no database can store it): pydantic
        # cannot hand such a string to its regex engine (string_unicode).
        pattern=r"^[^\x00-\x1f\x7f-\x9f]+$",
    ),
]
Email = Annotated[
    str,
    Field(max_length=EMAIL_MAX_LENGTH),
    AfterValidator(normalise_email),
    # The OpenAPI document says what the validator checks (service/emails.py).
    WithJsonSchema(
        {
            "type": "string",
            "format": "email",
            "maxLength": EMAIL_MAX_LENGTH,
            "not": {"pattern": RESERVED_DOMAINS_PATTERN},
            "description": "An email address (RFC 5321); domains under "
            + ", ".join(f".{name}" for name in RESERVED_DOMAINS)
            + " are refused: they never receive mail.",
        }
    ),
]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    email: Email


def _refuse_null(value: object) -> object:
    if value is None:
        raise ValueError("may be left out, but not null: the column is NOT NULL")
    return value


T = TypeVar("T")
# A PATCH field for a NOT NULL column: it may be left out, and null is refused (422). None is
# only its default, standing for "not sent" (the router sends the store the fields set), and
# the OpenAPI document shows the type without null. A field for a nullable column is `X | None`.
NotNull = Annotated[T | SkipJsonSchema[None], BeforeValidator(_refuse_null)]


def _absent_means_unchanged(schema: dict[str, Any]) -> None:
    # The defaults are not values: a field left out leaves the column as it is.
    for field in schema.get("properties", {}).values():
        field.pop("default", None)


class UserUpdate(BaseModel):
    """Only the fields sent change; null clears a nullable column and is refused for the
    others (422)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_absent_means_unchanged)

    name: NotNull[Name] = None
    email: NotNull[Email] = None


class User(BaseModel):
    id: int
    name: str
    email: str
    created_at: datetime


class ErrorMessage(BaseModel):
    detail: str


class UserPage(BaseModel):
    items: list[User]
    # Pass as ?after= to get the next page; null on the last page.
    next_after: int | None
