"""Chat lines and typing notices between the parties, stored before they are delivered."""

from __future__ import annotations

import functools
import logging

from contact_center.contacts.core import (
    ContactCore,
    advisor_ref,
    agent_id_of,
    is_party,
    parties_of,
)
from contact_center.contacts.states import ContactState
from contact_center.contacts.store import NewChatLine
from contact_center.db.models import Contact, Role
from contact_center.errors import Conflict, ErrorCode, Forbidden
from contact_center.identity.auth import Identity
from contact_center.protocol import ChatTypingNotice
from recordings.redact import mask_card_numbers

log = logging.getLogger(__name__)

OPEN_FOR_CHAT = (ContactState.CONNECTED, ContactState.QUEUED, ContactState.OFFERED)


class NotAParty(Forbidden):
    """The sender is not the contact's customer or advisor (or there is no such contact)."""


class ContactWithBot(Conflict):
    """The bot has the contact: its gateway takes the customer's lines."""

    code = ErrorCode.INVALID_STATE


def _admit(identity: Identity, contact_id: str, contact: Contact | None) -> Exception | None:
    """Why ``identity`` may not add a line to ``contact`` as it is now, if it may not."""
    if contact is None or not is_party(identity, contact):
        return NotAParty(f"contact {contact_id} is not yours")
    if contact.state in OPEN_FOR_CHAT:
        return None
    refusal = ContactWithBot if contact.state == ContactState.BOT else Conflict
    return refusal(
        f"contact {contact.id} is {contact.state}; chat is open while queued or connected",
        code=ErrorCode.INVALID_STATE,
    )


class Chat(ContactCore):
    """Chat lines and typing notices between the parties, stored before they are delivered."""

    async def chat(
        self, identity: Identity, contact_id: str, text: str, *, request_id: str | None = None
    ) -> int:
        """A chat line of one of ``contact_id``'s parties; its seq. Whether the sender is a
        party and the contact open for chat is checked in the line's own transaction (one
        read per batch of lines, not one per line); sent again with the ``request_id`` of a
        stored line, it is that line. A contact with the bot raises ``ContactWithBot``; one
        that is not the sender's is refused and audited (``contact_for``)."""
        advisor = identity.role is not Role.CUSTOMER
        line = NewChatLine(
            contact_id=contact_id,
            sender_ref=identity.ref,
            sender_role="advisor" if advisor else "customer",
            text=mask_card_numbers(text),
            request_id=request_id,
            admit=functools.partial(_admit, identity, contact_id),
        )
        try:
            message, _new = await self.chat_writer.write(
                line, sender_name=identity.display_name if advisor else None
            )
        except NotAParty:
            await self.contact_for(identity, contact_id)  # refuses and audits
            raise
        return message.seq

    async def post_chat(
        self,
        contact: Contact,
        *,
        sender_ref: str,
        sender_role: str,
        text: str,
        sender_name: str | None = None,
        request_id: str | None = None,
    ) -> int:
        """Persist a chat line and deliver it to both parties (``post_chat_once``); its seq."""
        seq, _new = await self.post_chat_once(
            contact, sender_ref=sender_ref, sender_role=sender_role, text=text,
            sender_name=sender_name, request_id=request_id,
        )  # fmt: skip
        return seq

    async def post_chat_once(
        self,
        contact: Contact,
        *,
        sender_ref: str,
        sender_role: str,
        text: str,
        sender_name: str | None = None,
        request_id: str | None = None,
    ) -> tuple[int, bool]:
        """Persist a chat line (server time, next sequence number, card numbers masked), add it
        to the timeline and deliver it to both parties, as stored; (its seq, whether it is new).
        A retry of a stored line (same ``request_id``) is delivered again (clients place lines
        by seq: shown once) and not stored again. Stored in a batch with the lines that arrive
        meanwhile (``chat_writer``); refused ``busy`` when too many wait."""
        line = NewChatLine(
            contact_id=contact.id,
            sender_ref=sender_ref,
            sender_role=sender_role,
            text=mask_card_numbers(text),
            request_id=request_id,
        )
        message, new = await self.chat_writer.write(
            line, recipients=parties_of(contact), sender_name=sender_name
        )
        return message.seq, new

    async def typing(self, identity: Identity, contact_id: str) -> None:
        contact = await self.contact_for(identity, contact_id)
        if identity.role is Role.CUSTOMER:
            if contact.advisor_id is not None:
                await self.bus.publish(
                    advisor_ref(agent_id_of(contact.advisor_id)),
                    ChatTypingNotice(contact_id=contact_id, sender="customer"),
                )
        else:
            await self.bus.publish(
                contact.customer_ref, ChatTypingNotice(contact_id=contact_id, sender="advisor")
            )
