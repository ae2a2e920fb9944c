"""Supervisor alarms: what needs a person's eyes now (a recorder that failed...), in Redis.

Alarms are entries of one Redis stream (``redis_keys.ALARMS``), capped at about
``MAX_ALARMS``: every instance adds to it, any reader (the supervisor wall) reads it in order
with ``read_alarms`` and carries on from the last ``id`` it saw.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import redis.asyncio as aioredis
from pydantic import BaseModel, Field

from contact_center import redis_keys
from recordings.redact import mask_fields

log = logging.getLogger(__name__)

MAX_ALARMS = 10_000


class Alarm(BaseModel):
    """One alarm as read back."""

    id: str
    """Stream id: pass it as ``after`` to read what came next."""
    kind: str
    """e.g. ``recorder_failure``."""
    at: str
    """Server time, ISO 8601 UTC."""
    instance: str
    contact_id: str | None = None
    message: str
    detail: dict[str, Any] = Field(default_factory=dict)


async def raise_alarm(
    redis: aioredis.Redis,
    *,
    kind: str,
    at: str,
    instance: str,
    message: str,
    contact_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> str:
    """Add an alarm; returns its id."""
    fields = {
        "kind": kind,
        "at": at,
        "instance": instance,
        "contact_id": contact_id or "",
        "message": mask_fields(message),
        "detail": json.dumps(mask_fields(detail or {}), ensure_ascii=False, default=str),
    }
    alarm_id = await redis.xadd(
        redis_keys.ALARMS,
        fields,  # type: ignore[arg-type]
        maxlen=MAX_ALARMS,
        approximate=True,
    )
    return str(alarm_id)


def _alarm(entry_id: Any, fields: dict[str, str]) -> Alarm:
    return Alarm(
        id=str(entry_id),
        kind=fields.get("kind", ""),
        at=fields.get("at", ""),
        instance=fields.get("instance", ""),
        contact_id=fields.get("contact_id") or None,
        message=fields.get("message", ""),
        detail=json.loads(fields.get("detail") or "{}"),
    )


async def read_alarms(
    redis: aioredis.Redis, *, after: str | None = None, count: int = 100
) -> list[Alarm]:
    """Alarms in the order they were raised, after the id ``after`` (from the first if None)."""
    start = f"({after}" if after else "-"
    entries: Any = await redis.xrange(redis_keys.ALARMS, min=start, count=count)
    return [_alarm(entry_id, fields) for entry_id, fields in entries]


async def latest_alarms(redis: aioredis.Redis, *, count: int = 20) -> list[Alarm]:
    """The newest ``count`` alarms, in the order they were raised (a reader starting up; it
    carries on with ``read_alarms(after=<the last id>)``)."""
    entries: Any = await redis.xrevrange(redis_keys.ALARMS, count=count)
    return [_alarm(entry_id, fields) for entry_id, fields in reversed(entries)]
