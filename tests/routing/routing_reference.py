"""A pure, in-memory reference router with the same rules as the Lua scripts.

It is what the stateful test compares the Redis store with, step by step. It has no candidate
window (it scans everything), which is exact as long as the test keeps fewer agents and queued
contacts than the policy's windows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from routing.errors import (
    ContactExistsError,
    InvalidStateError,
    OfferExpiredError,
    UnknownAgentError,
    UnknownContactError,
)
from routing.models import CHANNELS, AgentProfile, AgentState, ContactRequest
from routing.policy import Policy
from routing.scoring import (
    AgentView,
    ContactView,
    channel_change_refusal,
    derive_state,
    is_excluded,
    next_ring_at,
    pick_agent,
    pick_contact,
    queue_score,
    ring_at,
    takes_offers,
)

ACTIVE = ("queued", "offered", "assigned")


@dataclass
class ReferenceRouter:
    policy: Policy
    agents: dict[str, AgentView] = field(default_factory=dict)
    contacts: dict[str, ContactView] = field(default_factory=dict)
    due: dict[str, float] = field(default_factory=dict)
    #: (contact, agent) of every offer made, in order: for the FIFO check
    offers: list[tuple[str, str]] = field(default_factory=list)
    fifo_violations: list[str] = field(default_factory=list)
    now: float = 0.0

    # --- helpers mirroring common.lua -----------------------------------------------------------

    def queued(self) -> list[ContactView]:
        return sorted(
            (c for c in self.contacts.values() if c.state == "queued"),
            key=lambda c: (c.score, c.id),
        )

    def _schedule_age(self, c: ContactView) -> None:
        t = self.now + self.policy.recheck_s
        nxt = next_ring_at(self.policy, c.ring_since, self.now)
        if nxt is not None and nxt < t:
            t = nxt
        for since in c.excluded_at.values():
            ends = since + self.policy.exclusion_s
            if self.now < ends < t:
                t = ends
        self.due["a|" + c.id] = t

    def _to_queue(self, c: ContactView) -> None:
        c.state = "queued"
        c.agent = c.offered_at = c.deadline = c.accepted_at = None
        self.due.pop("o|" + c.id, None)
        self._schedule_age(c)

    def _check_fifo(self, c: ContactView, a: AgentView) -> None:
        for d in self.contacts.values():
            if (
                d.state == "queued"
                and d.id != c.id
                and (d.language, d.channel, d.req, d.opt, d.priority, d.vip)
                == (c.language, c.channel, c.req, c.opt, c.priority, c.vip)
                and not is_excluded(self.policy, d, a.id, self.now)
                and (d.score, d.id) < (c.score, c.id)
            ):
                self.fifo_violations.append(f"{c.id} offered to {a.id} before {d.id}")

    def _make_offer(self, c: ContactView, a: AgentView) -> None:
        self._check_fifo(c, a)
        self.due.pop("a|" + c.id, None)
        c.state = "offered"
        c.agent = a.id
        c.offered_at = self.now
        c.deadline = self.now + self.policy.offer_timeout_s
        a.held[c.id] = "offered"
        a.load[c.channel] = a.load.get(c.channel, 0) + 1
        a.routed[c.channel] = self.now
        self.due["o|" + c.id] = c.deadline
        self.offers.append((c.id, a.id))

    def _match_contact(self, c: ContactView) -> None:
        if c.state != "queued":
            return
        ring = ring_at(self.policy, c.ring_since, self.now)
        found = pick_agent(self.agents.values(), c, ring, self.now, self.policy)
        if found:
            self._make_offer(c, found[0])

    def _match_agent(self, a: AgentView) -> None:
        for _ in range(64):
            if not takes_offers(a):
                return
            c = pick_contact(a, self.queued(), self.now, self.policy)
            if c is None:
                return
            self._make_offer(c, a)

    def _became_idle(self, a: AgentView) -> None:
        a.idle = self.now
        a.routed = {ch.value: self.now for ch in CHANNELS}

    def _free_slot(self, a: AgentView, c: ContactView) -> None:
        a.held.pop(c.id, None)
        a.load[c.channel] = max(0, a.load.get(c.channel, 0) - 1)
        if not a.held:
            self._became_idle(a)

    def _set_presence(self, a: AgentView, pres: str, released: list[str]) -> None:
        if pres != "available":
            for cid in sorted(k for k, how in a.held.items() if how == "offered"):
                c = self.contacts[cid]
                self._free_slot(a, c)
                self._to_queue(c)
                released.append(cid)
            if a.wrap_until > 0:
                a.wrap_until = 0.0
                self.due.pop("w|" + a.id, None)
        elif a.presence != "available":
            a.misses = 0
            self._became_idle(a)
        a.presence = pres

    def _exclude(self, c: ContactView, agent_id: str) -> None:
        c.excluded.add(agent_id)
        c.excluded_at[agent_id] = self.now

    def _release_late(self, c: ContactView) -> None:
        assert c.agent is not None
        a = self.agents[c.agent]
        self._free_slot(a, c)
        self._to_queue(c)
        self._match_contact(c)
        self._match_agent(a)

    def _miss(self, c: ContactView) -> None:
        assert c.agent is not None
        a = self.agents[c.agent]
        self._free_slot(a, c)
        self._exclude(c, a.id)
        self._to_queue(c)
        a.misses += 1
        released = [c.id]
        if a.misses >= self.policy.misses_before_away:
            self._set_presence(a, "away", released)
        for cid in released:
            self._match_contact(self.contacts[cid])
        self._match_agent(a)

    def _end_work(self, a: AgentView, c: ContactView) -> None:
        self._free_slot(a, c)
        if a.presence == "available" and not a.held and self.policy.wrapup_s > 0:
            a.wrap_until = self.now + self.policy.wrapup_s
            self.due["w|" + a.id] = a.wrap_until

    def _finish(self, c: ContactView, state: str) -> None:
        c.state = state
        c.finished_at = self.now
        self.due.pop("o|" + c.id, None)
        self.due.pop("a|" + c.id, None)
        self.due["x|" + c.id] = self.now + self.policy.retain_done_s

    def _contact(self, cid: str) -> ContactView:
        if cid not in self.contacts:
            raise UnknownContactError(cid)
        return self.contacts[cid]

    def _agent(self, aid: str) -> AgentView:
        if aid not in self.agents:
            raise UnknownAgentError(aid)
        return self.agents[aid]

    # --- operations mirroring the scripts -------------------------------------------------------

    def upsert_agent(self, p: AgentProfile) -> AgentState:
        a = self.agents.get(p.id)
        if a is None:
            a = AgentView(
                id=p.id,
                languages=p.languages,
                skills={},
                capacity={},
                load={ch.value: 0 for ch in CHANNELS},
                idle=self.now,
                routed={ch.value: self.now for ch in CHANNELS},
            )
            self.agents[p.id] = a
        a.languages = frozenset(p.languages)
        a.skills = dict(p.skills)
        a.capacity = {str(k): v for k, v in self.policy.capacity_of(p.capacity).items()}
        self._match_agent(a)
        return derive_state(a)

    def set_agent_state(self, aid: str, state: AgentState) -> AgentState:
        a = self._agent(aid)
        released: list[str] = []
        self._set_presence(a, state.value, released)
        for cid in released:
            self._match_contact(self.contacts[cid])
        self._match_agent(a)
        return derive_state(a)

    def wrapup_done(self, aid: str) -> AgentState:
        a = self._agent(aid)
        if a.wrap_until > 0:
            a.wrap_until = 0.0
            self._became_idle(a)
            self.due.pop("w|" + a.id, None)
            self._match_agent(a)
        return derive_state(a)

    def enqueue(self, r: ContactRequest) -> str:
        old = self.contacts.get(r.id)
        if old and old.state in ACTIVE:
            raise ContactExistsError(r.id, state=old.state)
        if old:
            self.due.pop("x|" + r.id, None)
        t = self.now if r.enqueued_at is None else r.enqueued_at
        c = ContactView(
            id=r.id,
            channel=r.channel.value,
            language=r.language,
            req=dict(r.skills),
            opt=dict(r.optional_skills),
            priority=r.priority,
            vip=r.vip,
            enqueued_at=t,
            ring_since=t,
            score=queue_score(self.policy, priority=r.priority, vip=r.vip, enqueued_at=t),
            excluded=set(r.excluded_agents),
            excluded_at={x: self.now for x in r.excluded_agents},
        )
        self.contacts[r.id] = c
        self._to_queue(c)
        self._match_contact(c)
        return c.state

    def accept(self, cid: str, aid: str) -> None:
        c = self._contact(cid)
        if c.state == "assigned" and c.agent == aid:
            return
        if c.state != "offered" or c.agent != aid:
            raise InvalidStateError(cid, state=c.state)
        assert c.deadline is not None
        if self.now > c.deadline:
            self._miss(c)
            raise OfferExpiredError(cid, state="queued")
        a = self.agents[aid]
        a.held[cid] = "assigned"
        a.misses = 0
        c.state = "assigned"
        c.accepted_at = self.now
        self.due.pop("o|" + cid, None)

    def reject(self, cid: str, aid: str) -> None:
        c = self._contact(cid)
        if c.state != "offered" or c.agent != aid:
            if aid in c.excluded and c.state not in ("completed", "cancelled") and c.agent != aid:
                return
            raise InvalidStateError(cid, state=c.state)
        self._miss(c)

    def complete(self, cid: str) -> None:
        c = self._contact(cid)
        if c.state == "completed":
            return
        if c.state != "assigned":
            raise InvalidStateError(cid, state=c.state)
        assert c.agent is not None
        a = self.agents[c.agent]
        self._end_work(a, c)
        self._finish(c, "completed")
        self._match_agent(a)

    def cancel(self, cid: str) -> None:
        c = self._contact(cid)
        if c.state in ("completed", "cancelled"):
            return
        a = None
        if c.state != "queued":
            assert c.agent is not None
            a = self.agents[c.agent]
            if c.state == "offered":
                self._free_slot(a, c)
            else:
                self._end_work(a, c)
        self._finish(c, "cancelled")
        if a:
            self._match_agent(a)

    def transfer(
        self, cid: str, skills: dict[str, int], language: str | None, exclude: bool
    ) -> None:
        c = self._contact(cid)
        if c.state in ("completed", "cancelled"):
            raise InvalidStateError(cid, state=c.state)
        a = None
        if c.state != "queued":
            assert c.agent is not None
            a = self.agents[c.agent]
            if c.state == "offered":
                self._free_slot(a, c)
            else:
                self._end_work(a, c)
            if exclude:
                self._exclude(c, a.id)
        c.req = dict(skills)
        if language:
            c.language = language
        c.ring_since = self.now
        self.due.pop("a|" + cid, None)
        self._to_queue(c)
        self._match_contact(c)
        if a:
            self._match_agent(a)

    def requeue_front(self, cid: str) -> None:
        c = self._contact(cid)
        if c.state not in ("offered", "assigned"):
            raise InvalidStateError(cid, state=c.state)
        assert c.agent is not None
        a = self.agents[c.agent]
        if c.state == "offered":
            self._free_slot(a, c)
        else:
            self._end_work(a, c)
        self._exclude(c, a.id)
        same = [d for d in self.queued() if (d.language, d.channel) == (c.language, c.channel)]
        if same and same[0].score - 0.001 < c.score:
            c.score = same[0].score - 0.001
        self._to_queue(c)
        self._match_contact(c)
        self._match_agent(a)

    def change_channel(self, cid: str, channel: str) -> str:
        c = self._contact(cid)
        if c.state in ("completed", "cancelled"):
            raise InvalidStateError(cid, state=c.state)
        if c.channel == channel:
            return c.state
        if c.state == "queued":
            c.channel = channel  # same score: its place in the new queue
            self._match_contact(c)
            return c.state
        assert c.agent is not None
        a = self.agents[c.agent]
        reason = channel_change_refusal(self.policy, a, c.channel, channel)
        if reason:
            raise InvalidStateError(f"{reason}: {cid}", state=c.state)
        a.load[c.channel] = max(0, a.load.get(c.channel, 0) - 1)
        a.load[channel] = a.load.get(channel, 0) + 1
        c.channel = channel
        self._match_agent(a)
        return c.state

    def process_due(self) -> int:
        items = sorted(
            ((t, m) for m, t in self.due.items() if t <= self.now), key=lambda item: item
        )
        handled = 0
        for _, m in items:
            at = self.due.get(m)
            if at is None or at > self.now:
                continue
            del self.due[m]
            handled += 1
            kind, key = m[0], m[2:]
            if kind == "o":
                c = self.contacts.get(key)
                if c and c.state == "offered":
                    assert c.deadline is not None
                    if self.now - c.deadline > self.policy.late_expiry_s:
                        self._release_late(c)
                    else:
                        self._miss(c)
            elif kind == "w":
                a = self.agents.get(key)
                if a and a.wrap_until > 0:
                    a.wrap_until = 0.0
                    self._became_idle(a)
                    self._match_agent(a)
            elif kind == "a":
                c = self.contacts.get(key)
                if c and c.state == "queued":
                    self._match_contact(c)
                    if c.state == "queued":
                        self._schedule_age(c)
            elif kind == "x":
                c = self.contacts.get(key)
                if c and c.state in ("completed", "cancelled"):
                    del self.contacts[key]
        return handled
