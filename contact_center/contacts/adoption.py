"""A contact whose instance is gone moves to a live one: its media and its recording.

A contact's media and the writing of its recording live on one instance (``Contact.instance``).
When that instance dies mid-contact (SIGKILL, a crash, a restart: every start is a new instance
id), the contact is *adopted* by a live instance, whichever comes first:

- the restarted server on the same machine, at start: its sweep finds the recording unsealed
  and unclaimed, and the contact still going on (``adopt_orphan``);
- any instance a party sends ``rtc.offer`` to, once the old instance is known dead: its lease
  ran out, or it was registered at this very media URL (so this process holds its port);
- the instance that takes over a dead instance's lease (``adopt_contacts_of``).

Adopting is one compare-and-set of ``Contact.instance`` in the database (from the dead instance
to this one, only while the contact is not over), so exactly one instance adopts, with a
``media_adopted`` event in the contact's timeline; then this instance records it: in the same
directory when this machine holds it, else in a new one, completed from the contact's stream.
A call that comes back is a new leg: new media files beside the first ones.
"""

from __future__ import annotations

import logging
import time

from sqlmodel import col, select

from contact_center import redis_keys
from contact_center.contacts import store
from contact_center.contacts.core import ContactCore
from contact_center.contacts.states import FINAL_STATES
from contact_center.db.models import Contact

log = logging.getLogger(__name__)


class Adoption(ContactCore):
    """Moving the contacts of a dead instance to this one."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.recordings.adopt_orphan = self.adopt_orphan

    async def instance_alive(self, instance: str | None) -> bool:
        """Whether ``instance`` may still hold media: its lease runs, and it is not registered
        at our own media URL (which only this process can be serving now)."""
        if instance is None or instance == self.instance_id:
            return True
        expires = await self.redis.zscore(redis_keys.LEASES, instance)
        if expires is None or float(expires) <= time.time():
            return False
        url = await self.redis.hget(redis_keys.INSTANCES, instance)
        return url is None or str(url) != self.media_url

    async def adopt(self, contact_id: str, *, reason: str) -> bool:
        """Move ``contact_id`` here from the instance it is on (compare-and-set: one instance
        wins); True when it is here now. Its recording is written here from now on."""
        async with self.tx() as session:
            contact = await store.get_contact(session, contact_id=contact_id)
            if contact is None or contact.state in FINAL_STATES:
                return False
            if contact.instance == self.instance_id:
                return True
            old = contact.instance
            if not await store.move_instance(session, contact_id=contact_id, old=old, new=self.instance_id):
                return False  # another instance adopted it first, or it just ended
            await store.add_event(
                session,
                contact_id=contact_id,
                actor="system",
                kind="media_adopted",
                data={"from": old, "to": self.instance_id, "reason": reason},
            )
        log.warning("contact %s moved here from %s (%s)", contact_id, old, reason)
        return True

    async def adopt_orphan(self, contact_id: str) -> bool:
        """The sweep's question for an unsealed, unclaimed recording: is its contact still going
        on? Then it is moved here (its recorder died with its process)."""
        return await self.adopt(contact_id, reason="its instance stopped; found at start")

    async def adopt_media(self, contact_id: str) -> bool:
        """A party offers media here for a contact whose instance is dead: adopt it."""
        if not await self.adopt(contact_id, reason="media offered after its instance stopped"):
            return False
        await self.recordings.adopt(contact_id)
        return True

    async def adopt_contacts_of(self, instance: str) -> int:
        """After taking over ``instance``'s lease: adopt its contacts that are not over."""
        async with self.tx() as session:
            rows = await session.exec(
                select(Contact.id)
                .where(col(Contact.instance) == instance)
                .where(col(Contact.state).notin_([s.value for s in FINAL_STATES]))
            )
            ids = list(rows)
        adopted = 0
        for contact_id in ids:
            if await self.adopt(contact_id, reason="its instance's lease ran out"):
                await self.recordings.adopt(contact_id)
                adopted += 1
        return adopted
