"""A contact ends: abandoned while waiting, to wrap-up once connected."""

from __future__ import annotations

import logging

from contact_center import redis_keys
from contact_center.contacts import store
from contact_center.contacts.core import (
    ContactCore,
)
from contact_center.contacts.states import WAITING_STATES, ContactState
from contact_center.db.models import Contact, ContactEvent
from contact_center.errors import Conflict, ErrorCode
from contact_center.identity.auth import Identity
from routing.errors import UnknownContactError

log = logging.getLogger(__name__)


class Ending(ContactCore):
    """A contact ends."""

    async def end(self, identity: Identity, contact_id: str, *, reason: str = "ended") -> Contact:
        """Either party ends: a waiting contact is abandoned, a connected one goes to wrap-up."""
        contact = await self.contact_for(identity, contact_id)
        return await self.end_contact(contact, actor=identity.ref, reason=reason)

    async def end_contact(self, contact: Contact, *, actor: str, reason: str) -> Contact:
        if contact.state in WAITING_STATES:
            target = ContactState.ABANDONED
        elif contact.state == ContactState.CONNECTED:
            target = ContactState.WRAP_UP
        else:
            raise Conflict(f"contact {contact.id} is {contact.state}", code=ErrorCode.INVALID_STATE)
        events: list[ContactEvent] = []
        async with self.tx(defer=events) as session:
            _, contact = await store.transition(
                session, contact_id=contact.id, to=target, actor=actor, kind=reason
            )
        self.waiting.forget(contact.id)
        await self.redis.zrem(
            redis_keys.GRACE,
            redis_keys.grace_member("customer", contact.id),
            redis_keys.grace_member("advisor", contact.id),
        )
        try:
            if target is ContactState.ABANDONED:
                await self.router.cancel(contact.id)
            else:
                await self.router.complete(contact.id)
        except UnknownContactError:
            pass  # never reached the router (the bot had it)
        # The router first (as before recordings), then the timeline, then the parties.
        for event in events:
            await self.recordings.add_event(event)
        await self.media.close_call(contact.id)
        await self.notify_parties(contact, self.state_message(contact, reason=reason))
        return contact

