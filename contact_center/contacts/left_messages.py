"""A waiting customer leaves a message (and may ask for a callback) instead of waiting: kept on
the contact, put before the supervisors, and the contact ends. Nothing the customer wrote is
lost when nobody who could serve them is signed in."""

from __future__ import annotations

import logging
from typing import Any

from contact_center.contacts import alarms, store
from contact_center.contacts.chat import Chat
from contact_center.contacts.core import now_utc
from contact_center.contacts.ending import Ending
from contact_center.contacts.states import ContactState
from contact_center.db.models import Contact
from contact_center.errors import Conflict, ErrorCode
from contact_center.identity.auth import Identity
from recordings.timeline import format_time

log = logging.getLogger(__name__)

#: Where a message may be left from: the customer is still waiting for a person.
MESSAGE_STATES = frozenset({ContactState.QUEUED, ContactState.OFFERED})


class LeftMessages(Chat, Ending):
    """``session.leave_message``."""

    async def leave_message(
        self,
        identity: Identity,
        contact_id: str,
        *,
        text: str,
        callback: bool,
        phone: str | None,
        request_id: str | None = None,
    ) -> Contact:
        """Store the message (a chat line, then a ``message_left`` event), raise it to the
        supervisors and end the contact (``abandoned``, reason ``message_left``)."""
        contact = await self.contact_for(identity, contact_id)
        if contact.state not in MESSAGE_STATES:
            raise Conflict(
                f"contact {contact_id} is {contact.state}; a message is left while waiting",
                code=ErrorCode.INVALID_STATE,
            )
        seq = await self.post_chat(
            contact, sender_ref=identity.ref, sender_role="customer", text=text,
            request_id=request_id,
        )
        detail: dict[str, Any] = {
            "chat_seq": seq, "callback": callback, "phone": phone, "language": contact.language,
        }
        async with self.tx() as session:
            await store.add_event(
                session, contact_id=contact_id, actor=identity.ref, kind="message_left", data=detail
            )
        await self.recordings.add(contact_id, "message_left", actor=identity.ref, **detail)
        who = identity.display_name or "a guest"
        wants = f"call back on {phone}" if callback else "reply when someone is free"
        try:
            await alarms.raise_alarm(
                self.redis,
                kind="message_left",
                at=format_time(now_utc()),
                instance=self.instance_id,
                contact_id=contact_id,
                message=f"{who} left a message ({contact.language}, {contact.topic or 'general'}): {wants}",
                detail={**detail, "customer": identity.ref, "text": text[:500]},
            )
        except Exception:  # the message is stored on the contact: the alarm is a pointer to it
            log.exception("message left on %s: the supervisors' alarm failed", contact_id)
        return await self.end_contact(contact, actor=identity.ref, reason="message_left")
