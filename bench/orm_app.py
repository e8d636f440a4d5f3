"""The conventional version of the same two routes, for bench/api.py: async SQLAlchemy ORM
(AsyncSession per request from a dependency, select(User), commit and refresh), an ORM class
mapped to service/tables.py's table, pydantic models with from_attributes and EmailStr. The
style most FastAPI services are written in (the full-stack-fastapi-template's, made async).

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/DB \\
        .venv/bin/python -m uvicorn bench.orm_app:app --app-dir /path/to/project
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict, EmailStr
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from service.tables import metadata, users

DEFAULT_POOL_SIZE = 20  # service/settings.py database_pool_size


class Base(DeclarativeBase):
    metadata = metadata


class User(Base):
    __table__ = users


def _url() -> str:
    scheme, separator, rest = os.environ.get("DATABASE_URL", "").partition("://")
    if not separator or not scheme.startswith("postgres"):
        raise RuntimeError("DATABASE_URL must be a postgres:// or postgresql:// URL")
    return f"postgresql+asyncpg://{rest}"


engine = create_async_engine(
    _url(),
    pool_size=int(os.environ.get("DATABASE_POOL_SIZE", DEFAULT_POOL_SIZE)),
    connect_args={
        "server_settings": {"search_path": os.environ.get("DATABASE_SCHEMA") or "test_app"}
    },
)
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)


async def get_session() -> AsyncIterator[AsyncSession]:
    async with SessionLocal() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    yield
    await engine.dispose()


app = FastAPI(lifespan=lifespan)


class UserCreate(BaseModel):
    name: str
    email: EmailStr


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    email: str
    created_at: datetime


@app.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}


@app.get("/users/{user_id}", response_model=UserPublic)
async def get_user(user_id: int, session: SessionDep) -> User:
    user = (await session.execute(select(User).where(User.id == user_id))).scalar_one_or_none()
    if user is None:
        raise HTTPException(404, "user not found")
    return user


@app.post("/users", status_code=201, response_model=UserPublic)
async def create_user(body: UserCreate, session: SessionDep) -> User:
    user = User(name=body.name, email=str(body.email))
    session.add(user)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise HTTPException(409, "email already registered") from None
    await session.refresh(user)
    return user
