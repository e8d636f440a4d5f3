"""Request and response bodies."""

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema

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


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    email: Email | None = None


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
