"""Typed keys for what the application object holds."""

from __future__ import annotations

from typing import TYPE_CHECKING

import redis.asyncio as aioredis
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

if TYPE_CHECKING:
    from contact_center.config import Settings
    from contact_center.valkey import EmbeddedValkey

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
ENGINE: web.AppKey[AsyncEngine] = web.AppKey("engine")
DB: web.AppKey[async_sessionmaker[AsyncSession]] = web.AppKey("db")
REDIS: web.AppKey[aioredis.Redis] = web.AppKey("redis")
REDIS_URL: web.AppKey[str] = web.AppKey("redis_url")
VALKEY: web.AppKey[EmbeddedValkey | None] = web.AppKey("valkey")
INSTANCE_ID: web.AppKey[str] = web.AppKey("instance_id")

if TYPE_CHECKING:
    from contact_center.auth import Identity

IDENTITY: web.RequestKey[Identity] = web.RequestKey("identity")
