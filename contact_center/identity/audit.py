"""The audit log: one row per security-relevant act."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from contact_center.db.engine import transaction
from contact_center.db.models import AuditLog


async def record(
    factory: async_sessionmaker[AsyncSession],
    *,
    actor: str,
    action: str,
    target: str | None = None,
    reason: str | None = None,
    address: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    async with transaction(factory) as session:
        session.add(
            AuditLog(
                actor=actor,
                action=action,
                target=target,
                reason=reason,
                address=address,
                detail=detail or {},
            )
        )
