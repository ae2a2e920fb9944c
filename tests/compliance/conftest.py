"""Fixtures of the compliance tests: a signed-in officer on the real app, and its audit rows."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlmodel import col, select

from contact_center import appkeys
from contact_center.db.engine import transaction
from contact_center.db.models import AuditLog, Role, User
from tests.helpers import login, make_user

REASON = "Case FC-2291: customer complaint about a card transfer"


async def csrf_of(client: Any) -> str:
    """The CSRF token of the client's session (the sign-in page shows it)."""
    page = await client.get("/login")
    match = re.search(r'name="csrf_token" value="([^"]+)"', await page.text())
    assert match
    return match.group(1)


@dataclass
class Officer:
    """A signed-in compliance user driving the API, with the grant of the current case."""

    client: Any
    user: User
    csrf: str
    grant: str | None = None
    case: dict[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"user:{self.user.id}"

    def headers(self, **extra: str) -> dict[str, str]:
        headers = {"X-CSRF-Token": self.csrf, **extra}
        if self.grant:
            headers["X-Compliance-Grant"] = self.grant
        return headers

    async def open_case(
        self, reason: str = REASON, contacts: list[str] | None = None
    ) -> dict[str, Any]:
        response = await self.client.post(
            "/api/compliance/grants",
            json={"reason": reason, "contacts": contacts or []},
            headers=self.headers(),
        )
        assert response.status == 201, await response.text()
        self.case = await response.json()
        self.grant = self.case["grant"]
        return self.case

    async def take_in(self, *contacts: str) -> dict[str, Any]:
        response = await self.client.post(
            "/api/compliance/grants/contacts",
            json={"contacts": list(contacts)},
            headers=self.headers(),
        )
        assert response.status == 200, await response.text()
        self.case = await response.json()
        self.grant = self.case["grant"]
        return self.case

    async def get(self, path: str, **options: Any) -> Any:
        headers = self.headers(**options.pop("headers", {}))
        return await self.client.get(path, headers=headers, **options)

    async def post(self, path: str, body: Any = None, **options: Any) -> Any:
        headers = self.headers(**options.pop("headers", {}))
        return await self.client.post(
            path, json=body if body is not None else {}, headers=headers, **options
        )

    async def json(self, path: str, **params: Any) -> Any:
        response = await self.get(path, params=params)
        assert response.status == 200, (path, response.status, await response.text())
        return await response.json()


@pytest.fixture
async def officer(client: Any, settings: Any) -> Officer:
    user = await make_user(settings, Role.COMPLIANCE, display_name="Carol Chan")
    assert (await login(client, user.username)).status == 303
    return Officer(client, user, await csrf_of(client))


async def audit_rows(client: Any, actor: str, since_id: int = 0) -> list[AuditLog]:
    """The compliance rows of ``actor`` after ``since_id``, oldest first."""
    async with transaction(client.app[appkeys.DB]) as session:
        rows = await session.exec(
            select(AuditLog)
            .where(
                AuditLog.actor == actor,
                col(AuditLog.id) > since_id,
                col(AuditLog.action).startswith("compliance."),
            )
            .order_by(col(AuditLog.id))
        )
        return list(rows.all())


async def last_audit_id(client: Any) -> int:
    async with transaction(client.app[appkeys.DB]) as session:
        rows = await session.exec(select(AuditLog).order_by(col(AuditLog.id).desc()).limit(1))
        row = rows.first()
        return row.id if row and row.id else 0
