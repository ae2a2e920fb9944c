"""A connected contact's media: SDP offers and ICE candidates, and the recording policy."""

from __future__ import annotations

import logging
from typing import Literal

from contact_center.contacts.adoption import Adoption
from contact_center.contacts.core import (
    now_utc,
    other_party_ref,
)
from contact_center.contacts.states import ContactState
from contact_center.db.models import Role
from contact_center.errors import Conflict, ErrorCode
from contact_center.identity.auth import Identity
from contact_center.protocol import MediaStatePush, MediaStateReport

log = logging.getLogger(__name__)


class Calls(Adoption):
    """A connected contact's media."""

    async def rtc_offer(self, identity: Identity, contact_id: str, sdp: str) -> str:
        contact = await self.contact_for(identity, contact_id)
        # Voice and video customers talk to the bot too (bot.voice); the call goes on into
        # the advisor's.
        with_bot = contact.state == ContactState.BOT and set(contact.channels) & {"voice", "video"}
        if contact.state != ContactState.CONNECTED and not with_bot:
            raise Conflict(
                f"contact {contact_id} is {contact.state}; media starts once connected",
                code=ErrorCode.INVALID_STATE,
            )
        if contact.instance != self.instance_id and (
            await self.instance_alive(contact.instance) or not await self.adopt_media(contact_id)
        ):
            raise Conflict(
                f"this contact's media lives on another server instance: {contact.instance}",
                code=ErrorCode.WRONG_INSTANCE,
            )
        party: Literal["customer", "advisor"] = (
            "customer" if identity.role is Role.CUSTOMER else "advisor"
        )
        call = self.media.get_or_create(contact_id)
        # Every inbound track, as received (no decoding), into the contact's recording; a
        # call that cannot be recorded is reported, never silent (see ``recording``).
        self.recordings.start_media(call, contact_id)
        return await call.answer(party, sdp)

    async def rtc_candidate(
        self,
        identity: Identity,
        contact_id: str,
        candidate: str,
        sdp_mid: str | None,
        sdp_mline_index: int | None,
    ) -> None:
        await self.contact_for(identity, contact_id)
        call = self.media.get(contact_id)
        if call is None:
            raise Conflict("send rtc.offer before candidates", code=ErrorCode.INVALID_STATE)
        party: Literal["customer", "advisor"] = (
            "customer" if identity.role is Role.CUSTOMER else "advisor"
        )
        await call.add_candidate(party, candidate, sdp_mid, sdp_mline_index)


    async def media_state(self, identity: Identity, report: MediaStateReport) -> None:
        """Tell the other party what ``identity``'s media is like; keep it in the recording."""
        contact = await self.contact_for(identity, report.contact_id)
        if contact.state != ContactState.CONNECTED:
            raise Conflict(
                f"contact {contact.id} is {contact.state}; media state needs connected",
                code=ErrorCode.INVALID_STATE,
            )
        party: Literal["customer", "advisor"] = (
            "customer" if identity.role is Role.CUSTOMER else "advisor"
        )
        push = MediaStatePush(
            contact_id=contact.id,
            party=party,
            microphone=report.microphone,
            camera=report.camera,
            connection=report.connection,
            loss_pct=report.loss_pct,
            rtt_ms=report.rtt_ms,
            at=now_utc(),
        )
        # Clients report changes only, so each report is a fact worth keeping for replay.
        await self.recordings.add(
            contact.id,
            "media_state",
            party=party,
            microphone=report.microphone,
            camera=report.camera,
            connection=report.connection,
            loss_pct=report.loss_pct,
            rtt_ms=report.rtt_ms,
            frames_decoded=report.frames_decoded,
        )
        other = other_party_ref(contact, party)
        await self.bus.publish(other, push)
