"""Adding a richer medium (voice, video) to a connected contact: both parties must ask."""

from __future__ import annotations

import logging

from contact_center import redis_keys
from contact_center.contacts import store
from contact_center.contacts.core import (
    CHANNEL_RANK,
    ContactCore,
    advisor_ref,
    agent_id_of,
    primary_channel,
)
from contact_center.contacts.states import ContactState
from contact_center.db.models import Role
from contact_center.errors import Conflict, ErrorCode
from contact_center.identity.auth import Identity
from contact_center.protocol import (
    UpgradeRequest,
)
from routing.errors import InvalidStateError
from routing.models import Channel

log = logging.getLogger(__name__)


class Upgrades(ContactCore):
    """Adding a richer medium (voice, video) to a connected contact."""

    async def upgrade(self, identity: Identity, contact_id: str, channel: Channel) -> bool:
        """Ask for (or agree to) a richer medium; both parties must ask. True once agreed."""
        contact = await self.contact_for(identity, contact_id)
        if contact.state != ContactState.CONNECTED:
            raise Conflict(f"contact {contact_id} is {contact.state}; upgrade needs connected")
        if channel.value in contact.channels:
            return True
        party = "customer" if identity.role is Role.CUSTOMER else "advisor"
        key = redis_keys.upgrade(contact_id, channel.value)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.sadd(key, party)
            pipe.expire(key, 120)
            pipe.smembers(key)
            _, _, parties = await pipe.execute()
        agreed = set(parties) == {"customer", "advisor"}
        await self.recordings.add(
            contact_id, "upgrade", channel=channel.value, by=party, actor=identity.ref, agreed=agreed
        )
        if not agreed:
            other = (
                contact.customer_ref
                if party == "advisor"
                else advisor_ref(agent_id_of(contact.advisor_id or 0))
            )
            await self.bus.publish(
                other, UpgradeRequest(contact_id=contact_id, channel=channel, by=party)
            )
            return False
        await self.redis.delete(key)
        channels = sorted(
            {*contact.channels, channel.value}, key=lambda c: CHANNEL_RANK[Channel(c)]
        )
        try:
            # The router first: it refuses when the advisor has no room on the richer channel.
            await self.router.change_channel(
                contact_id, primary_channel(channels)
            )
        except InvalidStateError as exc:
            raise Conflict(f"cannot add {channel.value}: {exc}", code=ErrorCode.NO_CAPACITY) from None
        async with self.tx() as session:
            stored = await store.get_contact(session, contact_id=contact_id)
            assert stored is not None
            stored.channels = channels
            session.add(stored)
            await store.add_event(
                session,
                contact_id=contact_id,
                actor=identity.ref,
                kind="upgraded",
                data={"channels": channels},
            )
        contact.channels = channels
        await self.notify_parties(contact, self.state_message(contact, reason="upgraded"))
        return True

