"""User accounts: creation with validation, look-up, and the parsing of CLI-style specs."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, Field, TypeAdapter, field_validator
from sqlmodel import func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from contact_center.db.models import CHANNELS, DEFAULT_CAPACITY, LANGUAGES, Role, User
from contact_center.identity.passwords import hash_password

_SKILL = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
Password = Annotated[str, Field(min_length=8, max_length=256)]
_password: TypeAdapter[str] = TypeAdapter(Password)


class UserCreate(BaseModel):
    """What it takes to create an account; every field checked."""

    username: str = Field(min_length=2, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    password: Password
    role: Role
    display_name: str = Field(default="", max_length=128)
    languages: list[str] = Field(default_factory=lambda: ["en"])
    skills: dict[str, int] = Field(default_factory=dict)
    capacity: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_CAPACITY))
    vip: bool = False

    @field_validator("languages")
    @classmethod
    def _languages(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one language is needed")
        for lang in value:
            if lang not in LANGUAGES:
                raise ValueError(f"unknown language {lang!r}; use {', '.join(LANGUAGES)}")
        return list(dict.fromkeys(value))

    @field_validator("skills")
    @classmethod
    def _skills(cls, value: dict[str, int]) -> dict[str, int]:
        for name, level in value.items():
            if not _SKILL.match(name):
                raise ValueError(f"skill name {name!r} must be lowercase letters, digits or _")
            if not 1 <= level <= 5:
                raise ValueError(f"skill {name}: proficiency must be 1 to 5, got {level}")
        return value

    @field_validator("capacity")
    @classmethod
    def _capacity(cls, value: dict[str, int]) -> dict[str, int]:
        for channel, count in value.items():
            if channel not in CHANNELS:
                raise ValueError(f"unknown channel {channel!r}; use {', '.join(CHANNELS)}")
            if not 0 <= count <= 20:
                raise ValueError(f"capacity {channel}: must be 0 to 20, got {count}")
        return {**DEFAULT_CAPACITY, **value}


def parse_levels(spec: str, *, what: str) -> dict[str, int]:
    """Parse ``cards:4,fx:3`` into ``{"cards": 4, "fx": 3}``."""
    result: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, level = part.partition(":")
        if not sep or not level.strip().isdigit():
            raise ValueError(f"{what} {part!r} must look like name:number, e.g. cards:4")
        result[name.strip()] = int(level)
    return result


async def create_user(session: AsyncSession, *, data: UserCreate) -> User:
    user = User(
        username=data.username,
        password_hash=hash_password(data.password),
        role=data.role,
        display_name=data.display_name or data.username,
        languages=data.languages,
        skills=data.skills,
        capacity=data.capacity,
        vip=data.vip,
    )
    session.add(user)
    await session.flush()
    return user


async def set_disabled(session: AsyncSession, *, user_id: int, disabled: bool) -> User:
    """Disable (or enable) an account. The caller ends its sessions: ``SessionStore.revoke_user``
    (else the periodic re-check of live sessions does, within a minute)."""
    user = await _existing(session, user_id)
    user.disabled = disabled
    session.add(user)
    await session.flush()
    return user


async def set_password(session: AsyncSession, *, user_id: int, password: str) -> User:
    """Give an account a new password (checked as at creation); the caller ends its sessions,
    as for ``set_disabled``."""
    _password.validate_python(password)  # the rules of a new account's password
    user = await _existing(session, user_id)
    user.password_hash = hash_password(password)
    session.add(user)
    await session.flush()
    return user


async def _existing(session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise LookupError(f"no user with id {user_id}")
    return user


async def get_user_by_username(session: AsyncSession, *, username: str) -> User | None:
    result = await session.exec(select(User).where(User.username == username))
    return result.first()


async def get_user(session: AsyncSession, *, user_id: int) -> User | None:
    return await session.get(User, user_id)


async def count_users(session: AsyncSession) -> int:
    result = await session.exec(select(func.count()).select_from(User))
    return int(result.one())
