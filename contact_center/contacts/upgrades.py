"""Changing a connected contact's medium: adding voice or video (both parties must ask) and
dropping it again (either party alone)."""

from __future__ import annotations

import logging

from contact_center import redis_keys
from contact_center.contacts import store
from contact_center.contacts.core import (
    CHANNEL_RANK,
    ContactCore,
    other_party_ref,
    primary_channel,
)
from contact_center.contacts.states import ContactState
from contact_center.db.models import Role
from contact_center.errors import Conflict, ErrorCode
from contact_center.identity.auth import Identity
from contact_center.protocol import (
    DowngradeNotice,
    UpgradeDeclined,
    UpgradeRequest,
)
from routing.errors import InvalidStateError
from routing.models import Channel

log = logging.getLogger(__name__)


def downgraded_channels(channels: list[str], to: Channel) -> list[str]:
    """The channels once the media above ``to`` are dropped (``to`` itself kept or added).

    ValueError when nothing richer than ``to`` is there to drop."""
    if primary_channel(channels) == to or CHANNEL_RANK[primary_channel(channels)] < CHANNEL_RANK[to]:
        raise ValueError(f"the contact has no medium richer than {to.value} ({', '.join(channels)})")
    kept = {c for c in channels if CHANNEL_RANK[Channel(c)] < CHANNEL_RANK[to]} | {to.value}
    return sorted(kept, key=lambda c: CHANNEL_RANK[Channel(c)])


class Upgrades(ContactCore):
    """Adding a richer medium (voice, video) to a connected contact, and dropping it."""

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
            other = other_party_ref(contact, party)
            await self.bus.publish(
                other, UpgradeRequest(contact_id=contact_id, channel=channel, by=party)
            )
            return False
        await self.redis.delete(key)
        channels = sorted(
            {*contact.channels, channel.value}, key=lambda c: CHANNEL_RANK[Channel(c)]
        )
        # The router first: it refuses when the advisor has no room on the richer channel.
        await self._change_channels(
            identity, contact_id, channels, kind="upgraded", data={},
            refused=(f"cannot add {channel.value}", ErrorCode.NO_CAPACITY),
        )  # fmt: skip
        contact.channels = channels
        call = self.media.get(contact_id)
        if call is not None and channel == Channel.VIDEO:
            call.restore_kind("video")  # recorded again if an earlier downgrade ended it
        await self.notify_parties(contact, self.state_message(contact, reason="upgraded"))
        return True

    async def decline_upgrade(self, identity: Identity, contact_id: str, channel: Channel) -> None:
        """Say "not now" to the upgrade the other party asked for: it is dropped (they may ask
        again), they are told at once, and the decline is in the timeline."""
        contact = await self.contact_for(identity, contact_id)
        if contact.state != ContactState.CONNECTED:
            raise Conflict(
                f"contact {contact_id} is {contact.state}; nothing to decline",
                code=ErrorCode.INVALID_STATE,
            )
        party = "customer" if identity.role is Role.CUSTOMER else "advisor"
        asker = "advisor" if party == "customer" else "customer"
        key = redis_keys.upgrade(contact_id, channel.value)
        # Only the asker's pending request is dropped, in one step: a decline that crosses an
        # agreement (or a second decline) finds nothing to decline.
        if not await self.redis.srem(key, asker):
            raise Conflict(
                f"the {asker} has not asked for {channel.value} on contact {contact_id}",
                code=ErrorCode.INVALID_STATE,
            )
        await self.recordings.add(
            contact_id, "upgrade_declined", channel=channel.value, by=party, actor=identity.ref
        )
        other = other_party_ref(contact, party)
        await self.bus.publish(
            other, UpgradeDeclined(contact_id=contact_id, channel=channel, by=party)
        )

    async def _change_channels(
        self,
        identity: Identity,
        contact_id: str,
        channels: list[str],
        *,
        kind: str,
        data: dict[str, str],
        refused: tuple[str, ErrorCode],
    ) -> None:
        """Move the contact to ``channels``: the router's load first (``refused`` names the
        error when it says no), then the contact row, with its ``kind`` event."""
        try:
            await self.router.change_channel(contact_id, primary_channel(channels))
        except InvalidStateError as exc:
            raise Conflict(f"{refused[0]}: {exc}", code=refused[1]) from None
        async with self.tx() as session:
            stored = await store.get_contact(session, contact_id=contact_id)
            assert stored is not None
            stored.channels = channels
            session.add(stored)
            await store.add_event(
                session,
                contact_id=contact_id,
                actor=identity.ref,
                kind=kind,
                data={"channels": channels, **data},
            )

    async def downgrade(self, identity: Identity, contact_id: str, to: Channel) -> list[str]:
        """Drop the media richer than ``to``; the other party is told. Returns the channels."""
        contact = await self.contact_for(identity, contact_id)
        if contact.state != ContactState.CONNECTED:
            raise Conflict(
                f"contact {contact_id} is {contact.state}; downgrade needs connected",
                code=ErrorCode.INVALID_STATE,
            )
        try:
            channels = downgraded_channels(list(contact.channels), to)
        except ValueError as exc:
            raise Conflict(str(exc), code=ErrorCode.INVALID_STATE) from None
        party = "customer" if identity.role is Role.CUSTOMER else "advisor"
        # A smaller medium always fits where the richer one did; the router moves the load.
        await self._change_channels(
            identity, contact_id, channels, kind="downgraded", data={"by": party},
            refused=(f"cannot go to {to.value}", ErrorCode.INVALID_STATE),
        )  # fmt: skip
        await self.recordings.add(
            contact_id, "downgrade", channel=to.value, by=party, actor=identity.ref
        )
        # Pending upgrade requests no longer hold: a new one must be asked for again.
        await self.redis.delete(
            *(redis_keys.upgrade(contact_id, c.value) for c in (Channel.VOICE, Channel.VIDEO))
        )
        call = self.media.get(contact_id)
        if call is not None:
            if to == Channel.TEXT:
                await self.media.close_call(contact_id)  # its files end; media_close written
            else:
                await call.end_kind("video")
        contact.channels = channels
        other = other_party_ref(contact, party)
        await self.notify_parties(contact, self.state_message(contact, reason="downgraded"))
        # After the state: a page shows the new channels first, then says who changed them.
        await self.bus.publish(other, DowngradeNotice(contact_id=contact_id, to=to, by=party))
        return channels

