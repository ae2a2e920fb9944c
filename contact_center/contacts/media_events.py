"""A party's media connection changed state: record it and tell both parties."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from contact_center.contacts import store
from contact_center.contacts.service import ContactService
from contact_center.protocol import PeerEvent

log = logging.getLogger(__name__)


@dataclass
class MediaEvents:
    """The media layer calls it (synchronously, it only queues); ``run`` handles in order."""

    _queue: asyncio.Queue[tuple[str, str, str, str]] = field(
        default_factory=lambda: asyncio.Queue(maxsize=1000)
    )

    def __call__(self, contact_id: str, party: str, what: str, state: str) -> None:
        try:
            self._queue.put_nowait((contact_id, party, what, state))
        except asyncio.QueueFull:
            log.warning("media events: queue full, dropping %s %s %s", contact_id, party, state)

    async def run(self, svc: ContactService) -> None:
        while True:
            contact_id, party, what, state = await self._queue.get()
            if what != "connection" or state not in ("connected", "failed", "closed"):
                continue
            try:
                async with svc.tx() as session:
                    contact = await store.get_contact(session, contact_id=contact_id)
                    if contact is None:
                        continue
                    await store.add_event(
                        session,
                        contact_id=contact_id,
                        actor="media",
                        kind=f"peer_{state}",
                        data={"party": party},
                    )
                await svc.notify_parties(
                    contact, PeerEvent(contact_id=contact_id, party=party, state=state)
                )
            except Exception:
                log.exception("media event %s %s %s", contact_id, party, state)

