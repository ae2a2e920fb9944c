"""A contact begins: a customer starts one, or the bot hands one over to the queue."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from sqlalchemy.exc import IntegrityError

from contact_center import redis_keys
from contact_center.contacts import store
from contact_center.contacts.core import (
    CHANNEL_RANK,
    RESUME_TOKEN_TTL_S,
    ContactCore,
    skills_for_topic,
)
from contact_center.contacts.states import ContactState
from contact_center.db.models import Contact, new_id
from contact_center.errors import Conflict, ErrorCode
from contact_center.identity.auth import Identity
from routing.models import Channel

log = logging.getLogger(__name__)


class Intake(ContactCore):
    """A contact begins."""

    async def start(
        self,
        identity: Identity,
        *,
        channels: list[Channel],
        language: str,
        topic: str | None,
        skills: dict[str, int] | None = None,
        priority: int = 0,
        state: ContactState = ContactState.QUEUED,
        reason: str | None = None,
        request_id: str | None = None,
    ) -> Contact:
        """Create a contact (in the bot's hands, or queued with the router), recorded here.
        ``request_id`` (the client's) is kept with it: see ``started_by``."""
        contact_id = new_id()
        # Its recording is claimed first: its timeline begins with the "created" event.
        await self.recordings.open(contact_id)
        try:
            contact = await self._create(
                contact_id,
                identity,
                channels=channels,
                language=language,
                topic=topic,
                skills=skills,
                priority=priority,
                state=state,
                request_id=request_id,
            )
        except IntegrityError:
            await self.recordings.discard(contact_id)
            # another socket of this customer started one at the same moment: the database's
            # one-live-contact-per-customer index refused this one
            raise Conflict(
                "you already have a conversation in progress", code=ErrorCode.ALREADY_STARTED
            ) from None
        except BaseException:
            await self.recordings.discard(contact_id)
            raise
        await self.recordings.started(contact_id)
        token = secrets.token_urlsafe(24)
        await self.redis.set(redis_keys.resume(token), contact.id, ex=RESUME_TOKEN_TTL_S)
        await self.redis.set(redis_keys.resume_of(contact.id), token, ex=RESUME_TOKEN_TTL_S)
        await self.bus.publish(
            identity.ref, self.state_message(contact, reason=reason, resume_token=token)
        )
        if state is ContactState.QUEUED:
            await self.enqueue(contact)
        return contact

    async def _create(
        self,
        contact_id: str,
        identity: Identity,
        *,
        channels: list[Channel],
        language: str,
        topic: str | None,
        skills: dict[str, int] | None,
        priority: int,
        state: ContactState,
        request_id: str | None = None,
    ) -> Contact:
        async with self.tx() as session:
            live = await store.live_contacts_of_customer(session, customer_ref=identity.ref)
            if live:
                raise Conflict(
                    f"you already have a conversation in progress ({live[0].id}, {live[0].state})",
                    code=ErrorCode.ALREADY_STARTED,
                )
            contact = Contact(
                id=contact_id,
                customer_ref=identity.ref,
                customer_name=identity.display_name,
                channels=sorted(
                    {c.value for c in channels}, key=lambda c: CHANNEL_RANK[Channel(c)]
                ),
                language=language,
                topic=topic,
                skills=skills or skills_for_topic(topic),
                priority=priority,
                vip=identity.vip,
                state=state.value,
                instance=self.instance_id,
                recording_status="recording" if self.recordings.owns(contact_id) else None,
            )
            session.add(contact)
            await session.flush()
            await store.add_event(
                session,
                contact_id=contact.id,
                actor=identity.ref,
                kind="created",
                to_state=state.value,
                data={"channels": contact.channels, "language": language, "topic": topic,
                      "request_id": request_id},
            )
        return contact

    async def started_by(self, identity: Identity, request_id: str) -> Contact | None:
        """The live contact this customer's ``session.start`` of ``request_id`` created, if
        any: a retry whose first answer was lost (its instance killed, Redis down) gets it
        back instead of ``already_started``."""
        async with self.tx() as session:
            for contact in await store.live_contacts_of_customer(session, customer_ref=identity.ref):
                events = await store.events_of(session, contact_id=contact.id)
                created = next((e for e in events if e.kind == "created"), None)
                if created is not None and (created.data or {}).get("request_id") == request_id:
                    return contact
        return None

    async def handoff_to_queue(
        self,
        contact_id: str,
        *,
        actor: str,
        language: str,
        skills: dict[str, int],
        priority: int,
        data: dict[str, Any],
    ) -> Contact:
        """The bot hands the customer over: the contact is queued with what the bot learned."""
        async with self.tx() as session:
            _, contact = await store.transition(
                session,
                contact_id=contact_id,
                to=ContactState.QUEUED,
                actor=actor,
                kind="handoff",
                data=data,
                values={"language": language, "skills": skills, "priority": priority},
            )
        await self.bus.publish(contact.customer_ref, self.state_message(contact, reason="handoff"))
        await self.enqueue(contact)
        return contact
