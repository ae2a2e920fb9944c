"""Parties come and go: a resume by token, what a connect replays, what a disconnect puts on a
grace timer; and where this instance's media is reached."""

from __future__ import annotations

import json
import logging
import math
import time
from datetime import UTC, datetime

from contact_center import redis_keys
from contact_center.contacts import store
from contact_center.contacts.core import (
    ContactCore,
    advisor_ref,
    agent_id_of,
)
from contact_center.contacts.states import ContactState
from contact_center.db.engine import transaction
from contact_center.db.models import Contact, Role, User
from contact_center.errors import Conflict, ErrorCode, Forbidden, NotFound
from contact_center.identity.auth import Identity
from contact_center.protocol import (
    AgentStateNotice,
    PeerEvent,
)
from routing.errors import RoutingError
from routing.models import AgentProfile, AgentState, Channel

log = logging.getLogger(__name__)


class Presence(ContactCore):
    """Parties come and go."""

    async def resume(self, identity: Identity, token: str) -> Contact:
        """Take up a contact again after a dropped connection (the place in the queue is kept)."""
        found = await self.redis.get(redis_keys.resume(token))
        if found is None:
            raise NotFound("this resume token is unknown or expired", code=ErrorCode.RESUME_EXPIRED)
        contact_id = str(found)
        if not contact_id:
            raise NotFound("this resume token is unknown or expired", code=ErrorCode.RESUME_EXPIRED)
        async with self.tx() as session:
            contact = await store.get_contact(session, contact_id=contact_id)
            if contact is None:
                raise NotFound("this resume token is unknown or expired", code=ErrorCode.RESUME_EXPIRED)
            if contact.customer_ref != identity.ref:
                if not identity.guest or not contact.customer_ref.startswith("guest:"):
                    raise Forbidden("this conversation belongs to someone else")
                # A guest who lost their cookie proves ownership with the token.
                contact.customer_ref = identity.ref
                session.add(contact)
                await store.add_event(
                    session, contact_id=contact.id, actor=identity.ref, kind="resumed_by_token"
                )
        if contact.state in (ContactState.ABANDONED, ContactState.ENDED):
            raise Conflict(f"contact {contact.id} is {contact.state}", code=ErrorCode.INVALID_STATE)
        await self.customer_connected(identity, only=contact.id)
        return contact

    async def customer_connected(self, identity: Identity, *, only: str | None = None) -> None:
        """Cancel pending abandonment and replay state and chat history to the customer."""
        async with transaction(self.db) as session:
            live = await store.live_contacts_of_customer(session, customer_ref=identity.ref)
        for contact in live:
            if only and contact.id != only:
                continue
            await self.redis.zrem(redis_keys.GRACE, redis_keys.grace_member("customer", contact.id))
            if contact.state == ContactState.QUEUED:
                self.waiting.watch(contact.id, identity.ref)
            await self.bus.publish(
                identity.ref,
                self.state_message(
                    contact,
                    reason="resumed",
                    resume_token=await self.resume_token(contact.id),
                    advisor_name=await self.advisor_name_of(contact),
                ),
            )
            await self.replay_chat(identity.ref, contact.id)
            if contact.state == ContactState.CONNECTED and contact.advisor_id is not None:
                await self.bus.publish(
                    advisor_ref(agent_id_of(contact.advisor_id)),
                    PeerEvent(contact_id=contact.id, party="customer", state="reconnected"),
                )

    async def customer_disconnected(self, identity: Identity) -> None:
        """Keep the customer's place for the grace period; then act as if they left."""
        async with transaction(self.db) as session:
            live = await store.live_contacts_of_customer(session, customer_ref=identity.ref)
        deadline = time.time() + self.grace.customer_s
        for contact in live:
            self.waiting.forget(contact.id)
            await self.redis.zadd(
                redis_keys.GRACE, {redis_keys.grace_member("customer", contact.id): deadline}
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
            if user is None or user.disabled:
                raise Forbidden("this account no longer exists or is disabled")
            open_contacts = await store.open_contacts_of_advisor(
                session, advisor_id=identity.user_id
            )
        agent_id = agent_id_of(identity.user_id)
        await self.router.upsert_agent(
            AgentProfile(
                id=agent_id,
                languages=frozenset(user.languages),
                skills=user.skills,
                capacity={Channel(k): v for k, v in user.capacity.items()},
            )
        )
        for contact in open_contacts:
            await self.redis.zrem(redis_keys.GRACE, redis_keys.grace_member("advisor", contact.id))
            await self.bus.publish(
                identity.ref,
                self.state_message(
                    contact,
                    reason="resumed",
                    advisor_name=identity.display_name,
                    facts=await self.facts_of(contact),
                ),
            )
            await self.replay_chat(identity.ref, contact.id)
            if contact.state == ContactState.CONNECTED:
                await self.bus.publish(
                    contact.customer_ref,
                    PeerEvent(contact_id=contact.id, party="advisor", state="reconnected"),
                )
        status = await self.router.agent_status(agent_id)
        before = await self.redis.getdel(redis_keys.presence_before(agent_id))
        if before and status.state is AgentState.OFFLINE:
            # back within the grace (a reload, a network blip, a server restart): the status
            # they had, not offline while still holding their contacts
            await self.router.set_agent_state(agent_id, AgentState(str(before)))
            status = await self.router.agent_status(agent_id)
        until = status.wrap_up_until  # a reload in wrap-up keeps its timer
        await self.bus.publish(
            identity.ref,
            AgentStateNotice(
                state=status.state.value,
                wrap_up_until=datetime.fromtimestamp(until, UTC) if until else None,
            ),
        )
        for contact_id in status.offered:
            await self.send_offer(contact_id, agent_id)

    async def advisor_disconnected(self, identity: Identity) -> None:
        """No new offers (open ones go back at once); connected customers wait a grace period."""
        assert identity.user_id is not None
        agent_id = agent_id_of(identity.user_id)
        try:
            chosen = chosen_presence((await self.router.agent_status(agent_id)).state)
            if chosen is not AgentState.OFFLINE:  # given back if they return within the grace
                await self.redis.set(
                    redis_keys.presence_before(agent_id),
                    chosen.value,
                    ex=math.ceil(self.grace.advisor_s) + 5,
                )
            await self.router.set_agent_state(agent_id, AgentState.OFFLINE)
        except RoutingError:
            log.exception("advisor %s: could not set offline", agent_id)
        async with transaction(self.db) as session:
            open_contacts = await store.open_contacts_of_advisor(
                session, advisor_id=identity.user_id
            )
        deadline = time.time() + self.grace.advisor_s
        for contact in open_contacts:
            if contact.state != ContactState.CONNECTED:
                continue
            await self.redis.zadd(
                redis_keys.GRACE, {redis_keys.grace_member("advisor", contact.id): deadline}
            )
            await self.bus.publish(
                contact.customer_ref,
                PeerEvent(contact_id=contact.id, party="advisor", state="disconnected"),
            )

    # ------------------------------------------------------------------ who is where

    async def mark_present(self, identity: Identity) -> None:
        """Record that ``identity`` has a socket here: presence that outlives this process, so
        that whoever sees this instance's lease run out can act for its people."""
        await self.redis.hset(
            redis_keys.presence(self.instance_id), identity.ref, identity_json(identity)
        )

    async def mark_absent(self, identity: Identity) -> None:
        await self.redis.hdel(redis_keys.presence(self.instance_id), identity.ref)

    async def present_anywhere(self, ref: str) -> bool:
        """Whether ``ref`` has a socket on an instance not yet taken over (alive, or dead so
        recently that its take-over will act for ``ref``)."""
        instances = [str(i) for i in await self.redis.zrange(redis_keys.LEASES, 0, -1)]
        if self.instance_id not in instances:
            instances.append(self.instance_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            for instance in instances:
                pipe.hexists(redis_keys.presence(instance), ref)
            found = await pipe.execute()
        return any(found)

    async def present_refs(self) -> set[str]:
        """Everyone ``present_anywhere`` (one read of every registry)."""
        instances = {str(i) for i in await self.redis.zrange(redis_keys.LEASES, 0, -1)}
        instances.add(self.instance_id)
        refs: set[str] = set()
        for instance in instances:
            refs.update(map(str, await self.redis.hkeys(redis_keys.presence(instance))))
        return refs

    async def register_instance(self) -> None:
        """Say where this instance's media is negotiated, for offers built by other instances."""
        await self.redis.hset(redis_keys.INSTANCES, self.instance_id, self.media_url)

    async def unregister_instance(self) -> None:
        await self.redis.hdel(redis_keys.INSTANCES, self.instance_id)



def chosen_presence(state: AgentState) -> AgentState:
    """What the advisor chose (offline, away, available) behind a state the router derives."""
    return state if state in (AgentState.OFFLINE, AgentState.AWAY) else AgentState.AVAILABLE


def identity_json(identity: Identity) -> str:
    return json.dumps(
        {
            "ref": identity.ref,
            "role": identity.role.value,
            "name": identity.display_name,
            "uid": identity.user_id,
            "vip": identity.vip,
        }
    )


def identity_of_json(blob: str) -> Identity:
    d = json.loads(blob)
    return Identity(
        ref=d["ref"],
        role=Role(d["role"]),
        display_name=d.get("name", ""),
        user_id=d.get("uid"),
        vip=bool(d.get("vip")),
    )
