"""User accounts: creation with validation, look-up, and the parsing of CLI-style specs."""

from __future__ import annotations

import re
import secrets
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, TypeAdapter, field_validator
from sqlmodel import col, func, select
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


async def create_user(session: AsyncSession, *, data: UserCreate, temporary: bool = False) -> User:
    """A new account; ``temporary``: its password was chosen by an administrator, so the user
    must choose their own at the first sign-in."""
    user = User(
        username=data.username,
        password_hash=hash_password(data.password),
        role=data.role,
        display_name=data.display_name or data.username,
        languages=data.languages,
        skills=data.skills,
        capacity=data.capacity,
        vip=data.vip,
        must_change_password=temporary,
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


async def set_password(
    session: AsyncSession, *, user_id: int, password: str, temporary: bool = False
) -> User:
    """Give an account a new password (checked as at creation); the caller ends its sessions,
    as for ``set_disabled``. ``temporary``: set by someone else, to be changed at next sign-in;
    a user's own choice clears the mark."""
    _password.validate_python(password)  # the rules of a new account's password
    user = await _existing(session, user_id)
    user.password_hash = hash_password(password)
    user.must_change_password = temporary
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


async def display_names(session: AsyncSession, *, user_ids: set[int]) -> dict[int, str]:
    """The display name of each of ``user_ids`` that exists (advisors shown to other people)."""
    if not user_ids:
        return {}
    result = await session.exec(
        select(User.id, User.display_name).where(col(User.id).in_(sorted(user_ids)))
    )
    return {int(uid): name for uid, name in result.all() if uid is not None}


async def count_users(session: AsyncSession) -> int:
    result = await session.exec(select(func.count()).select_from(User))
    return int(result.one())


# ---------------------------------------------------------------- administration (views.admin, CLI)
# Kept below the original functions so that the changes other branches make above merge cleanly.

#: The fields an administrator may change; ``None`` leaves a field as it is.
EDITABLE = ("role", "display_name", "languages", "skills", "capacity", "vip", "disabled")


class UserUpdate(BaseModel):
    """A change to an account: only the fields given are touched; each is checked as at creation."""

    model_config = {"extra": "forbid"}

    role: Role | None = None
    display_name: str | None = Field(default=None, min_length=1, max_length=128)
    languages: list[str] | None = None
    skills: dict[str, int] | None = None
    capacity: dict[str, int] | None = None
    vip: bool | None = None
    disabled: bool | None = None

    @field_validator("languages")
    @classmethod
    def _languages(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else UserCreate._languages(value)

    @field_validator("skills")
    @classmethod
    def _skills(cls, value: dict[str, int] | None) -> dict[str, int] | None:
        return None if value is None else UserCreate._skills(value)

    @field_validator("capacity")
    @classmethod
    def _capacity(cls, value: dict[str, int] | None) -> dict[str, int] | None:
        return None if value is None else UserCreate._capacity(value)


class UserPublic(BaseModel):
    """An account as the admin API shows it: everything but the password hash."""

    id: int
    username: str
    role: Role
    display_name: str
    languages: list[str]
    skills: dict[str, int]
    capacity: dict[str, int]
    vip: bool
    disabled: bool
    must_change_password: bool
    """Signed in with a password an administrator set: a new one is due at next sign-in."""
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserPublic:
        # read back from the database, ``role`` is a plain str: validate from attributes
        return cls.model_validate({name: getattr(user, name) for name in cls.model_fields})


async def list_users(
    session: AsyncSession, *, role: Role | None = None, include_customers: bool = False
) -> list[User]:
    """Accounts by username; customers only when asked for (there may be many)."""
    query = select(User).order_by(User.username)
    if role is not None:
        query = query.where(User.role == role)
    elif not include_customers:
        query = query.where(User.role != Role.CUSTOMER)
    return list((await session.exec(query)).all())


async def update_user(
    session: AsyncSession, *, user_id: int, data: UserUpdate
) -> tuple[User, dict[str, dict[str, Any]]]:
    """Apply ``data``; returns the account and what changed, ``{field: {"from", "to"}}``."""
    user = await session.get(User, user_id)
    if user is None:
        raise LookupError(f"no user with id {user_id}")
    changes: dict[str, dict[str, Any]] = {}
    for name in EDITABLE:
        value = getattr(data, name)
        if value is None:
            continue
        before = getattr(user, name)
        if before != value:
            changes[name] = {"from": before, "to": value}
            setattr(user, name, value)
    if changes:
        session.add(user)
        await session.flush()
    return user, changes


def temporary_password() -> str:
    """A one-time password an administrator hands over (18 characters, about 107 bits)."""
    return secrets.token_urlsafe(14)


async def reset_password(session: AsyncSession, *, user_id: int) -> tuple[User, str]:
    """Replace the password with a new temporary one, returned once in clear; the user must
    choose their own at next sign-in."""
    user = await session.get(User, user_id)
    if user is None:
        raise LookupError(f"no user with id {user_id}")
    password = temporary_password()
    user.password_hash = hash_password(password)
    user.must_change_password = True
    session.add(user)
    await session.flush()
    return user, password
