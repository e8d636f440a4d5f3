"""Request and response bodies."""

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, EmailStr, StringConstraints

from service.tables import NAME_MAX_LENGTH

Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=NAME_MAX_LENGTH)
]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    email: EmailStr


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    email: EmailStr | None = None


class User(BaseModel):
    id: int
    name: str
    email: str
    created_at: datetime


class UserPage(BaseModel):
    items: list[User]
    # Pass as ?after= to get the next page; null on the last page.
    next_after: int | None
