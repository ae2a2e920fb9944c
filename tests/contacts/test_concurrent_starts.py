"""One live contact per customer, enforced by the database: six sockets starting at once."""

from __future__ import annotations

import asyncio

from sqlmodel import col, select

from contact_center.contacts.states import LIVE_STATES
from contact_center.db.engine import create_engine, session_factory, transaction
from contact_center.db.models import Contact
from contact_center.tools.wsclient import RequestFailed, SignallingClient


async def test_six_sockets_of_one_customer_start_at_once_and_one_contact_lives(
    server, fast_settings
):
    first = SignallingClient(str(server.make_url("")))
    others = [SignallingClient(str(server.make_url("")), session=first.http) for _ in range(5)]
    sockets = [first, *others]
    try:
        await first.as_guest()
        for s in sockets:
            await s.connect()
        results = await asyncio.gather(
            *(s.request("session.start", channels=["text"], language="en", skip_bot=True)
              for s in sockets),
            return_exceptions=True,
        )
        started = [r for r in results if isinstance(r, dict)]
        refused = [r for r in results if isinstance(r, RequestFailed)]
        assert len(started) == 1, results
        assert len(refused) == 5 and {r.code for r in refused} == {"already_started"}, results
        engine = create_engine(fast_settings.database_url)
        try:
            async with transaction(session_factory(engine)) as session:
                live = (await session.exec(select(Contact).where(
                    Contact.customer_ref == first.welcome["user"],  # type: ignore[index]
                    col(Contact.state).in_([s.value for s in LIVE_STATES]),
                ))).all()
        finally:
            await engine.dispose()
        assert [c.id for c in live] == [started[0]["contact_id"]]
    finally:
        for s in reversed(sockets):
            await s.close()
