"""The contact lifecycle: what happens when customers, advisors and the router act.

The database holds each contact's state and history (every transition an event row with its
actor); the router (Redis) holds who waits for whom; the bus carries notices to whichever
instance holds each party's WebSocket. Handlers here are called by the signalling layer with an
authenticated identity and raise ``ClientError``s that it turns into error frames.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from contact_center import audit, contacts, rkeys
from contact_center.auth import Identity
from contact_center.bus import Bus
from contact_center.db import transaction
from contact_center.errors import Conflict, Forbidden, NotFound
from contact_center.lifecycle import WAITING_STATES, ContactState, InvalidTransition
from contact_center.media.call import MediaHub
from contact_center.models import Contact, Role, User
from contact_center.protocol import (
    AgentStateNotice,
    Channel,
    ChatMessage,
    ChatTypingNotice,
    Offer,
    PeerEvent,
    SessionState,
    UpgradeRequest,
)
from routing.errors import InvalidStateError, RoutingError, UnknownContactError
from routing.models import AgentProfile, AgentState, ContactRequest
from routing.models import Channel as RouterChannel
from routing.models import ContactState as RouterContactState
from routing.store import RouterStore

log = logging.getLogger(__name__)

#: A topic chosen by the customer becomes a required skill at this minimum proficiency.
TOPIC_MIN_PROFICIENCY = 2
TOPICS = ("cards", "fx", "remittance", "loans", "investments", "accounts", "complaints", "general")
CHANNEL_RANK = {Channel.TEXT: 0, Channel.VOICE: 1, Channel.VIDEO: 2}
POSITION_PUSH_EVERY_S = 10.0
RESUME_TOKEN_TTL_S = 24 * 3600


def primary_channel(channels: list[Channel] | list[str]) -> Channel:
    """The richest medium asked for: it decides which capacity the contact takes."""
    return max((Channel(c) for c in channels), key=CHANNEL_RANK.__getitem__)


def skills_for_topic(topic: str | None) -> dict[str, int]:
    if not topic or topic == "general" or topic not in TOPICS:
        return {"general": 1}
    return {topic: TOPIC_MIN_PROFICIENCY}


def agent_id_of(user_id: int) -> str:
    return str(user_id)


def advisor_ref(agent_id: str) -> str:
    return f"user:{agent_id}"


def now_utc() -> datetime:
    return datetime.now(UTC)


def _ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


@dataclass
class Waiting:
    """A queued contact whose customer is connected here: we push its queue position."""

    customer_ref: str
    last: tuple[int, int] | None = None
    pushed_at: float = 0.0


@dataclass
class Grace:
    """Seconds a party may be gone before we act for them."""

    customer_s: float = 60.0
    advisor_s: float = 60.0


@dataclass
class SessionService:
    db: async_sessionmaker[AsyncSession]
    redis: aioredis.Redis
    router: RouterStore
    bus: Bus
    media: MediaHub
    instance_id: str
    media_url: str
    grace: Grace = field(default_factory=Grace)
    recordings_dir: Path | None = None
    waiting: dict[str, Waiting] = field(default_factory=dict)

    # ------------------------------------------------------------------ access

    async def contact_for(self, identity: Identity, contact_id: str) -> Contact:
        """The contact, if ``identity`` is one of its parties; otherwise refuse and audit."""
        async with transaction(self.db) as session:
            contact = await contacts.get_contact(session, contact_id=contact_id)
        allowed = contact is not None and (
            (identity.role is Role.CUSTOMER and contact.customer_ref == identity.ref)
            or (
                identity.role is Role.ADVISOR
                and identity.user_id is not None
                and contact.advisor_id == identity.user_id
            )
        )
        if not allowed:
            await audit.record(
                self.db,
                actor=identity.ref,
                action="access.denied",
                target=f"contact:{contact_id}",
                detail={"role": identity.role.value},
            )
            # Same answer whether it exists or not: ids are not to be probed.
            raise Forbidden(f"contact {contact_id} is not yours")
        assert contact is not None
        return contact

    def state_message(
        self, contact: Contact, *, reason: str | None = None, **extra: Any
    ) -> SessionState:
        return SessionState(
            contact_id=contact.id,
            state=contact.state,
            reason=reason,
            channels=[Channel(c) for c in contact.channels],
            at=now_utc(),
            **extra,
        )

    async def notify_parties(self, contact: Contact, message: Any) -> None:
        refs = [contact.customer_ref]
        if contact.advisor_id is not None:
            refs.append(advisor_ref(agent_id_of(contact.advisor_id)))
        await self.bus.publish_many(refs, message)

    # ------------------------------------------------------------------ customers

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
    ) -> Contact:
        """Create a contact (in the bot's hands, or queued with the router)."""
        async with transaction(self.db) as session:
            live = await contacts.live_contacts_of_customer(session, customer_ref=identity.ref)
            if live:
                raise Conflict(
                    f"you already have a conversation in progress ({live[0].id}, {live[0].state})",
                    code="already_started",
                )
            contact = Contact(
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
            )
            session.add(contact)
            await session.flush()
            await contacts.add_event(
                session,
                contact_id=contact.id,
                actor=identity.ref,
                kind="created",
                to_state=state.value,
                data={"channels": contact.channels, "language": language, "topic": topic},
            )
        token = secrets.token_urlsafe(24)
        await self.redis.set(rkeys.resume(token), contact.id, ex=RESUME_TOKEN_TTL_S)
        await self.redis.set(rkeys.resume_of(contact.id), token, ex=RESUME_TOKEN_TTL_S)
        await self.bus.publish(
            identity.ref, self.state_message(contact, reason=reason, resume_token=token)
        )
        if state is ContactState.QUEUED:
            await self._enqueue(contact)
        return contact

    async def resume_token(self, contact_id: str) -> str | None:
        token = await self.redis.get(rkeys.resume_of(contact_id))
        return str(token) if token is not None else None

    async def _enqueue(self, contact: Contact) -> None:
        self.waiting[contact.id] = Waiting(customer_ref=contact.customer_ref)
        await self.router.enqueue(
            ContactRequest(
                id=contact.id,
                channel=RouterChannel(primary_channel(contact.channels).value),
                language=contact.language,
                skills=contact.skills,
                priority=contact.priority,
                vip=contact.vip,
                enqueued_at=contact.created_at.timestamp(),
            )
        )

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
        async with transaction(self.db) as session:
            _, contact = await contacts.transition(
                session,
                contact_id=contact_id,
                to=ContactState.QUEUED,
                actor=actor,
                kind="handoff",
                data=data,
                values={"language": language, "skills": skills, "priority": priority},
            )
        await self.bus.publish(contact.customer_ref, self.state_message(contact, reason="handoff"))
        await self._enqueue(contact)
        return contact

    async def resume(self, identity: Identity, token: str) -> Contact:
        """Take up a contact again after a dropped connection (the place in the queue is kept)."""
        found = await self.redis.get(rkeys.resume(token))
        if found is None:
            raise NotFound("this resume token is unknown or expired", code="resume_expired")
        contact_id = str(found)
        if not contact_id:
            raise NotFound("this resume token is unknown or expired", code="resume_expired")
        async with transaction(self.db) as session:
            contact = await contacts.get_contact(session, contact_id=contact_id)
            if contact is None:
                raise NotFound("this resume token is unknown or expired", code="resume_expired")
            if contact.customer_ref != identity.ref:
                if not identity.guest or not contact.customer_ref.startswith("guest:"):
                    raise Forbidden("this conversation belongs to someone else")
                # A guest who lost their cookie proves ownership with the token.
                contact.customer_ref = identity.ref
                session.add(contact)
                await contacts.add_event(
                    session, contact_id=contact.id, actor=identity.ref, kind="resumed_by_token"
                )
        if contact.state in (ContactState.ABANDONED, ContactState.ENDED):
            raise Conflict(f"contact {contact.id} is {contact.state}", code="invalid_state")
        await self.customer_connected(identity, only=contact.id)
        return contact

    async def customer_connected(self, identity: Identity, *, only: str | None = None) -> None:
        """Cancel pending abandonment and replay state and chat history to the customer."""
        async with transaction(self.db) as session:
            live = await contacts.live_contacts_of_customer(session, customer_ref=identity.ref)
        for contact in live:
            if only and contact.id != only:
                continue
            await self.redis.zrem(rkeys.GRACE, rkeys.grace_member("customer", contact.id))
            if contact.state == ContactState.QUEUED:
                self.waiting[contact.id] = Waiting(customer_ref=identity.ref)
            await self.bus.publish(
                identity.ref,
                self.state_message(
                    contact, reason="resumed", resume_token=await self.resume_token(contact.id)
                ),
            )
            await self._replay_chat(identity.ref, contact.id)
            if contact.state == ContactState.CONNECTED and contact.advisor_id is not None:
                await self.bus.publish(
                    advisor_ref(agent_id_of(contact.advisor_id)),
                    PeerEvent(contact_id=contact.id, party="customer", state="reconnected"),
                )

    async def customer_disconnected(self, identity: Identity) -> None:
        """Keep the customer's place for the grace period; then act as if they left."""
        async with transaction(self.db) as session:
            live = await contacts.live_contacts_of_customer(session, customer_ref=identity.ref)
        deadline = time.time() + self.grace.customer_s
        for contact in live:
            self.waiting.pop(contact.id, None)
            await self.redis.zadd(
                rkeys.GRACE, {rkeys.grace_member("customer", contact.id): deadline}
            )
            if contact.state == ContactState.CONNECTED and contact.advisor_id is not None:
                await self.bus.publish(
                    advisor_ref(agent_id_of(contact.advisor_id)),
                    PeerEvent(contact_id=contact.id, party="customer", state="disconnected"),
                )

    # ------------------------------------------------------------------ advisors

    async def advisor_connected(self, identity: Identity) -> None:
        """Register the advisor with the router and replay their open contacts and offers."""
        assert identity.user_id is not None
        async with transaction(self.db) as session:
            user = await session.get(User, identity.user_id)
            if user is None:
                raise Forbidden("this account no longer exists")
            open_contacts = await contacts.open_contacts_of_advisor(
                session, advisor_id=identity.user_id
            )
        agent_id = agent_id_of(identity.user_id)
        await self.router.upsert_agent(
            AgentProfile(
                id=agent_id,
                languages=frozenset(user.languages),
                skills=user.skills,
                capacity={RouterChannel(k): v for k, v in user.capacity.items()},
            )
        )
        for contact in open_contacts:
            await self.redis.zrem(rkeys.GRACE, rkeys.grace_member("advisor", contact.id))
            await self.bus.publish(identity.ref, self.state_message(contact, reason="resumed"))
            await self._replay_chat(identity.ref, contact.id)
            if contact.state == ContactState.CONNECTED:
                await self.bus.publish(
                    contact.customer_ref,
                    PeerEvent(contact_id=contact.id, party="advisor", state="reconnected"),
                )
        status = await self.router.agent_status(agent_id)
        await self.bus.publish(identity.ref, AgentStateNotice(state=status.state.value))
        for contact_id in status.offered:
            await self.send_offer(contact_id, agent_id)

    async def advisor_disconnected(self, identity: Identity) -> None:
        """No new offers (open ones go back at once); connected customers wait a grace period."""
        assert identity.user_id is not None
        agent_id = agent_id_of(identity.user_id)
        try:
            await self.router.set_agent_state(agent_id, AgentState.OFFLINE)
        except RoutingError:
            log.exception("advisor %s: could not set offline", agent_id)
        async with transaction(self.db) as session:
            open_contacts = await contacts.open_contacts_of_advisor(
                session, advisor_id=identity.user_id
            )
        deadline = time.time() + self.grace.advisor_s
        for contact in open_contacts:
            if contact.state != ContactState.CONNECTED:
                continue
            await self.redis.zadd(
                rkeys.GRACE, {rkeys.grace_member("advisor", contact.id): deadline}
            )
            await self.bus.publish(
                contact.customer_ref,
                PeerEvent(contact_id=contact.id, party="advisor", state="disconnected"),
            )

    async def set_agent_status(self, identity: Identity, status: str) -> str:
        assert identity.user_id is not None
        state = await self.router.set_agent_state(agent_id_of(identity.user_id), AgentState(status))
        return state.value

    async def accept(self, identity: Identity, contact_id: str) -> Contact:
        assert identity.user_id is not None
        agent_id = agent_id_of(identity.user_id)
        try:
            assignment = await self.router.accept(contact_id, agent_id)
        except UnknownContactError:
            raise NotFound(f"no offer of contact {contact_id} for you") from None
        except InvalidStateError as exc:
            raise Conflict(str(exc), code=exc.code) from None
        explanation = assignment.explanation.model_dump() if assignment.explanation else {}
        async with transaction(self.db) as session:
            try:
                _, contact = await contacts.transition(
                    session,
                    contact_id=contact_id,
                    to=ContactState.CONNECTED,
                    actor=identity.ref,
                    kind="accepted",
                    data={"agent_id": agent_id, "explanation": explanation},
                    values={"advisor_id": identity.user_id},
                )
            except InvalidTransition as exc:
                existing = await contacts.get_contact(session, contact_id=contact_id)
                if (
                    existing is not None
                    and existing.state == ContactState.CONNECTED
                    and existing.advisor_id == identity.user_id
                ):
                    contact = existing  # accept is idempotent
                else:
                    raise Conflict(str(exc), code="invalid_state") from None
        self.waiting.pop(contact_id, None)
        await self.notify_parties(contact, self.state_message(contact, reason="accepted"))
        return contact

    async def reject(self, identity: Identity, contact_id: str) -> None:
        assert identity.user_id is not None
        try:
            await self.router.reject(contact_id, agent_id_of(identity.user_id))
        except UnknownContactError:
            raise NotFound(f"no offer of contact {contact_id} for you") from None
        except InvalidStateError as exc:
            raise Conflict(str(exc), code=exc.code) from None

    async def transfer(
        self, identity: Identity, contact_id: str, *, skills: dict[str, int], language: str | None
    ) -> Contact:
        contact = await self.contact_for(identity, contact_id)
        if contact.state != ContactState.CONNECTED:
            raise Conflict(f"contact {contact_id} is {contact.state}; only a connected one moves")
        async with transaction(self.db) as session:
            _, contact = await contacts.transition(
                session,
                contact_id=contact_id,
                to=ContactState.QUEUED,
                actor=identity.ref,
                kind="transferred",
                data={"skills": skills, "language": language, "from_advisor": identity.user_id},
                values={
                    "skills": skills,
                    "language": language or contact.language,
                    "advisor_id": None,
                },
            )
        await self.media.close_call(contact_id)
        await self.bus.publish(identity.ref, self.state_message(contact, reason="transferred_away"))
        await self.bus.publish(
            contact.customer_ref, self.state_message(contact, reason="transferred")
        )
        self.waiting[contact_id] = Waiting(customer_ref=contact.customer_ref)
        await self.router.transfer(contact_id, skills=skills, language=language, exclude_agent=True)
        return contact

    async def wrapup_done(self, identity: Identity, contact_id: str | None) -> list[str]:
        assert identity.user_id is not None
        async with transaction(self.db) as session:
            open_contacts = await contacts.open_contacts_of_advisor(
                session, advisor_id=identity.user_id
            )
        in_wrapup = [c for c in open_contacts if c.state == ContactState.WRAP_UP]
        targets = in_wrapup
        if contact_id is not None:
            targets = [c for c in in_wrapup if c.id == contact_id]
            if not targets:
                await self.contact_for(identity, contact_id)  # audits a foreign id
                raise Conflict(f"contact {contact_id} is not in wrap-up", code="invalid_state")
        done = [await self.finish_wrapup(c.id, actor=identity.ref) for c in targets]
        if len(done) == len(in_wrapup):
            # The router's wrap-up is the advisor's, not a contact's: it ends with the last one.
            await self.router.wrapup_done(agent_id_of(identity.user_id))
        return done

    async def finish_wrapup(self, contact_id: str, *, actor: str) -> str:
        async with transaction(self.db) as session:
            _, contact = await contacts.transition(
                session,
                contact_id=contact_id,
                to=ContactState.ENDED,
                actor=actor,
                kind="wrapup_done",
            )
        if contact.advisor_id is not None:
            await self.bus.publish(
                advisor_ref(agent_id_of(contact.advisor_id)),
                self.state_message(contact, reason="wrapup_done"),
            )
        return contact_id

    # ------------------------------------------------------------------ both parties

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
            raise Conflict(f"contact {contact.id} is {contact.state}", code="invalid_state")
        async with transaction(self.db) as session:
            _, contact = await contacts.transition(
                session, contact_id=contact.id, to=target, actor=actor, kind=reason
            )
        self.waiting.pop(contact.id, None)
        await self.redis.zrem(
            rkeys.GRACE,
            rkeys.grace_member("customer", contact.id),
            rkeys.grace_member("advisor", contact.id),
        )
        try:
            if target is ContactState.ABANDONED:
                await self.router.cancel(contact.id)
            else:
                await self.router.complete(contact.id)
        except UnknownContactError:
            pass  # never reached the router (the bot had it)
        await self.media.close_call(contact.id)
        await self.notify_parties(contact, self.state_message(contact, reason=reason))
        return contact

    async def chat(self, identity: Identity, contact_id: str, text: str) -> int:
        return await self.chat_on(identity, await self.contact_for(identity, contact_id), text)

    async def chat_on(self, identity: Identity, contact: Contact, text: str) -> int:
        """A chat line of one of ``contact``'s parties (already checked by ``contact_for``)."""
        if contact.state not in (ContactState.CONNECTED, ContactState.QUEUED, ContactState.OFFERED):
            raise Conflict(
                f"contact {contact.id} is {contact.state}; chat is open while queued or connected",
                code="invalid_state",
            )
        role = "customer" if identity.role is Role.CUSTOMER else "advisor"
        return await self.post_chat(contact, sender_ref=identity.ref, sender_role=role, text=text)

    async def post_chat(
        self, contact: Contact, *, sender_ref: str, sender_role: str, text: str
    ) -> int:
        """Persist a chat line (server time, next sequence number) and deliver it to both parties."""
        message = await contacts.add_chat_message(
            self.db,
            contact_id=contact.id,
            sender_ref=sender_ref,
            sender_role=sender_role,
            text=text,
        )
        frame = ChatMessage(
            contact_id=contact.id,
            seq=message.seq,
            sender=sender_role,
            text=text,
            at=message.at,
        )
        await self.notify_parties(contact, frame)
        return message.seq

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

    async def history(self, contact_id: str) -> list[dict[str, Any]]:
        async with transaction(self.db) as session:
            lines = await contacts.chat_history(session, contact_id=contact_id)
        return [
            {"seq": m.seq, "sender": m.sender_role, "text": m.text, "at": m.at.isoformat()}
            for m in lines
        ]

    async def _replay_chat(self, ref: str, contact_id: str) -> None:
        async with transaction(self.db) as session:
            lines = await contacts.chat_history(session, contact_id=contact_id)
        for m in lines:
            await self.bus.publish(
                ref,
                ChatMessage(
                    contact_id=contact_id,
                    seq=m.seq,
                    sender=m.sender_role,
                    text=m.text,
                    at=m.at,
                ),
            )

    async def upgrade(self, identity: Identity, contact_id: str, channel: Channel) -> bool:
        """Ask for (or agree to) a richer medium; both parties must ask. True once agreed."""
        contact = await self.contact_for(identity, contact_id)
        if contact.state != ContactState.CONNECTED:
            raise Conflict(f"contact {contact_id} is {contact.state}; upgrade needs connected")
        if channel.value in contact.channels:
            return True
        party = "customer" if identity.role is Role.CUSTOMER else "advisor"
        key = rkeys.upgrade(contact_id, channel.value)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.sadd(key, party)
            pipe.expire(key, 120)
            pipe.smembers(key)
            _, _, parties = await pipe.execute()
        if set(parties) != {"customer", "advisor"}:
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
                contact_id, RouterChannel(primary_channel(channels).value)
            )
        except InvalidStateError as exc:
            raise Conflict(f"cannot add {channel.value}: {exc}", code="no_capacity") from None
        async with transaction(self.db) as session:
            stored = await contacts.get_contact(session, contact_id=contact_id)
            assert stored is not None
            stored.channels = channels
            session.add(stored)
            await contacts.add_event(
                session,
                contact_id=contact_id,
                actor=identity.ref,
                kind="upgraded",
                data={"channels": channels},
            )
        contact.channels = channels
        await self.notify_parties(contact, self.state_message(contact, reason="upgraded"))
        return True

    async def rtc_offer(self, identity: Identity, contact_id: str, sdp: str) -> str:
        contact = await self.contact_for(identity, contact_id)
        if contact.state != ContactState.CONNECTED:
            raise Conflict(
                f"contact {contact_id} is {contact.state}; media starts once connected",
                code="invalid_state",
            )
        if contact.instance != self.instance_id:
            raise Conflict(
                f"this contact's media lives on another server instance: {contact.instance}",
                code="wrong_instance",
            )
        party: Literal["customer", "advisor"] = (
            "customer" if identity.role is Role.CUSTOMER else "advisor"
        )
        call = self.media.get_or_create(contact_id)
        if self.recordings_dir is not None and call.recorder is None:
            if call.relay_path == "encoded":
                # Every inbound track, as received: no decoding (see contact_center/media).
                call.start_recording(self.recordings_dir / contact_id)
            else:
                log.warning("contact %s: the transcoding relay does not record", contact_id)
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
            raise Conflict("send rtc.offer before candidates", code="invalid_state")
        party: Literal["customer", "advisor"] = (
            "customer" if identity.role is Role.CUSTOMER else "advisor"
        )
        await call.add_candidate(party, candidate, sdp_mid, sdp_mline_index)

    # ------------------------------------------------------------------ router events

    async def send_offer(
        self, contact_id: str, agent_id: str, explanation: dict[str, Any] | None = None
    ) -> None:
        try:
            status = await self.router.contact_status(contact_id)
        except UnknownContactError:
            return
        if status.state is not RouterContactState.OFFERED or status.agent_id != agent_id:
            return  # taken back (expired, rejected, cancelled) before we got to it
        async with transaction(self.db) as session:
            contact = await contacts.get_contact(session, contact_id=contact_id)
        if contact is None or status.deadline is None:
            return
        await self.bus.publish(
            advisor_ref(agent_id),
            Offer(
                contact_id=contact_id,
                channels=[Channel(c) for c in contact.channels],
                language=contact.language,
                skills=contact.skills,
                priority=contact.priority,
                expires_at=_ts(status.deadline),
                topic=contact.topic,
                transcript=await self.history(contact_id),
                explanation=explanation or {},
                media_url=await self.media_url_of(contact),
            ),
        )

    async def register_instance(self) -> None:
        """Say where this instance's media is negotiated, for offers built by other instances."""
        await self.redis.hset(rkeys.INSTANCES, self.instance_id, self.media_url)

    async def unregister_instance(self) -> None:
        await self.redis.hdel(rkeys.INSTANCES, self.instance_id)

    async def media_url_of(self, contact: Contact) -> str | None:
        """The WebSocket URL of the instance that holds ``contact``'s media."""
        if contact.instance is None or contact.instance == self.instance_id:
            return self.media_url
        url = await self.redis.hget(rkeys.INSTANCES, contact.instance)
        return str(url) if url else None
