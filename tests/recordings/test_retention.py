"""Retention periods, legal holds and purges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from recordings.ledger import entries
from recordings.retention import (
    HoldError,
    RetentionPolicy,
    RetentionTooShort,
    clear_hold,
    parse_period,
    purge,
    retain_until,
    set_hold,
)
from recordings.seal import seal_contact
from recordings.storage import LocalStorage
from tests.recordings.sealing import record_contact, sessions  # noqa: F401


def test_periods_and_the_six_month_floor() -> None:
    at = datetime(2024, 2, 29, 12, 0, tzinfo=UTC)
    assert retain_until(at) == datetime(2031, 2, 28, 12, 0, tzinfo=UTC)
    assert parse_period("6m").after(at) == datetime(2024, 8, 29, 12, 0, tzinfo=UTC)
    assert parse_period("400d").after(at) == at + timedelta(days=400)
    assert parse_period("10 years").months == 120
    for bad in ("5m", "182d", "0y"):
        with pytest.raises(RetentionTooShort, match=bad):
            parse_period(bad)
    with pytest.raises(ValueError, match="bad retention"):
        parse_period("seven years")
    policy = RetentionPolicy.parse("7y; complaints=10y, sales=183d")
    assert policy.retain_until(at, "complaints").year == 2034
    assert policy.retain_until(at, "sales") == at + timedelta(days=183)
    assert policy.retain_until(at, "other").year == 2031
    with pytest.raises(RetentionTooShort, match="'1m'"):
        RetentionPolicy.parse("7y; sales=1m")


async def test_holds_block_purge_and_dry_run_deletes_nothing(tmp_path: Path, sessions: async_sessionmaker[AsyncSession]) -> None:  # noqa: F811
    root = tmp_path / "rec"
    old = datetime.now(UTC) - timedelta(days=3000)
    for contact in ("a", "b"):
        await seal_contact(record_contact(root / contact), sessions, sealed_at=old)
    storage = LocalStorage(root)
    with pytest.raises(HoldError, match="reason"):
        await set_hold(sessions, "a", reason="  short ", actor="legal")
    with pytest.raises(HoldError, match="actor"):
        await set_hold(sessions, "a", reason="litigation 2026-118", actor=" ")
    with pytest.raises(HoldError, match="no sealed contact"):
        await set_hold(sessions, "zz", reason="litigation 2026-118", actor="legal")
    assert await set_hold(sessions, "a", reason="litigation 2026-118", actor="legal") == 1
    held = (await entries(sessions, contact_id="a"))[0]
    assert held.held and held.held_by == "legal" and held.held_at is not None
    dry = await purge(sessions, storage, dry_run=True)
    assert dry.purged == {"b": sorted(storage.list("b"))} and dry.held == ["a"]
    assert len(await entries(sessions)) == 2 and storage.list("b")
    done = await purge(sessions, storage)
    assert list(done.purged) == ["b"] and not storage.list("b") and storage.list("a")
    purge_entry = (await entries(sessions, kind="purge"))[0]
    assert purge_entry.contact_id == "b" and len(purge_entry.detail["files"]) == 4
    await clear_hold(sessions, "a", reason="case closed 2026-12", actor="legal")
    again = await purge(sessions, storage)
    assert list(again.purged) == ["a"] and not storage.list("a")
    assert (await purge(sessions, storage)).purged == {}
