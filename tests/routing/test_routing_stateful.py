"""Stateful proof: random operations on the Redis router and on a pure reference model.

After every step the Redis state must equal the model's, and the invariants are checked on the
Redis state itself: capacity, exclusive channels, one holder per contact, nothing lost,
language, FIFO.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from routing.errors import InvalidStateError, RoutingError
from routing.models import CHANNELS, AgentProfile, AgentState, Channel, ContactRequest
from routing.policy import parse_policy
from routing.scoring import can_serve, takes_offers
from routing.store import RouterStore
from tests.redis_servers import RedisTarget
from tests.routing.routing_reference import ReferenceRouter

LANGS = ["en", "zh", "yue"]
SKILLS = ["cards", "fx", "loans"]
AGENT_IDS = [f"a{i}" for i in range(6)]

POLICY = parse_policy(
    {
        "languages": LANGS,
        "offer_timeout_s": 20,
        "misses_before_away": 3,
        "wrapup_s": 30,
        "aging": [
            {"after_s": 30, "lower_proficiency_by": 2},
            {"after_s": 90, "drop_optional": True},
        ],
        "recheck_s": 15,
        "candidate_window": 50,
        "queue_window": 50,
    }
)

agent_skills = st.dictionaries(st.sampled_from(SKILLS), st.integers(2, 5), min_size=1, max_size=3)
contact_skills = st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 4), max_size=2)


def _refusal(exc: InvalidStateError | None) -> str | None:
    """The reason a change_channel was refused: capacity, exclusive_channels or state."""
    if exc is None:
        return None
    head = str(exc).split(":", 1)[0]
    return head if head in ("capacity", "exclusive_channels") else "state"


def _norm_load(load: dict[str, int]) -> dict[str, int]:
    return {ch.value: load.get(ch.value, 0) for ch in CHANNELS}


class RouterMachine(RuleBasedStateMachine):
    target = RedisTarget()

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.client = self.target.client()
        self.prefix = f"cc:rt:test:{uuid.uuid4().hex[:8]}"
        self.store = RouterStore(self.client, POLICY, prefix=self.prefix)
        self.model = ReferenceRouter(POLICY, now=1000.0)
        self.next_contact = 0

    def teardown(self) -> None:
        async def close() -> None:
            keys = [k async for k in self.client.scan_iter(match="{" + self.prefix + "}*")]
            if keys:
                await self.client.delete(*keys)
            await self.client.aclose()

        self.loop.run_until_complete(close())
        self.loop.close()

    # --- running both sides ---------------------------------------------------------------------

    def both(self, store_call: Any, model_call: Any) -> None:
        """Run the same operation on the store and the model; outcomes must agree."""
        store_err: type[Exception] | None = None
        model_err: type[Exception] | None = None
        try:
            self.loop.run_until_complete(store_call)
        except RoutingError as exc:
            store_err = type(exc)
        try:
            model_call()
        except RoutingError as exc:
            model_err = type(exc)
        assert store_err == model_err, (store_err, model_err)

    def contacts_in(self, *states: str) -> list[str]:
        return sorted(c.id for c in self.model.contacts.values() if c.state in states)

    @staticmethod
    def pick(ids: list[str], index: int) -> str | None:
        return ids[index % len(ids)] if ids else None

    # --- rules ----------------------------------------------------------------------------------

    @initialize(
        team=st.lists(
            st.tuples(st.sets(st.sampled_from(LANGS), min_size=1, max_size=3), agent_skills),
            min_size=2,
            max_size=4,
        )
    )
    def staff_the_floor(self, team: list[tuple[set[str], dict[str, int]]]) -> None:
        for index, (langs, skills) in enumerate(team):
            self.add_agent(index, langs, skills, 2, True)

    @rule(
        index=st.integers(0, len(AGENT_IDS) - 1),
        langs=st.sets(st.sampled_from(LANGS), min_size=1, max_size=2),
        skills=agent_skills,
        text=st.integers(1, 3),
        available=st.booleans(),
    )
    def add_agent(
        self, index: int, langs: set[str], skills: dict[str, int], text: int, available: bool
    ) -> None:
        aid = AGENT_IDS[index]
        if aid in self.model.agents:
            # a profile update keeps languages and capacity (held contacts stay valid)
            old = self.model.agents[aid]
            langs = set(old.languages)
            text = old.capacity["text"]
        profile = AgentProfile(
            id=aid, languages=frozenset(langs), skills=skills, capacity={Channel.TEXT: text}
        )
        self.both(
            self.store.upsert_agent(profile, now=self.model.now),
            lambda: self.model.upsert_agent(profile),
        )
        if available:
            self.both(
                self.store.set_agent_state(aid, AgentState.AVAILABLE, now=self.model.now),
                lambda: self.model.set_agent_state(aid, AgentState.AVAILABLE),
            )

    @rule(
        index=st.integers(0, 100),
        state=st.sampled_from(
            [AgentState.AVAILABLE, AgentState.AVAILABLE, AgentState.AWAY, AgentState.OFFLINE]
        ),
    )
    def set_state(self, index: int, state: AgentState) -> None:
        aid = self.pick(sorted(self.model.agents), index)
        if aid:
            self.both(
                self.store.set_agent_state(aid, state, now=self.model.now),
                lambda: self.model.set_agent_state(aid, state),
            )

    @rule(
        channel=st.sampled_from(list(Channel)),
        language=st.sampled_from(LANGS),
        skills=contact_skills,
        optional=st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 5), max_size=1),
        priority=st.integers(0, 1),
        vip=st.booleans(),
    )
    def enqueue(
        self,
        channel: Channel,
        language: str,
        skills: dict[str, int],
        optional: dict[str, int],
        priority: int,
        vip: bool,
    ) -> None:
        cid = f"c{self.next_contact}"
        self.next_contact += 1
        request = ContactRequest(
            id=cid,
            channel=channel,
            language=language,
            skills=skills,
            optional_skills=optional,
            priority=priority,
            vip=vip,
        )
        self.both(
            self.store.enqueue(request, now=self.model.now), lambda: self.model.enqueue(request)
        )

    @rule(index=st.integers(0, 100), wrong_agent=st.booleans())
    def accept(self, index: int, wrong_agent: bool) -> None:
        cid = self.pick(self.contacts_in("offered", "assigned"), index)
        if cid:
            aid = self.model.contacts[cid].agent
            assert aid is not None
            if wrong_agent:
                aid = AGENT_IDS[(AGENT_IDS.index(aid) + 1) % len(AGENT_IDS)]
            self.both(
                self.store.accept(cid, aid, now=self.model.now),
                lambda: self.model.accept(cid, aid),
            )

    @rule(
        channel=st.sampled_from(list(Channel)),
        language=st.sampled_from(LANGS),
        skill=st.sampled_from(SKILLS),
        index=st.integers(0, 100),
    )
    def enqueue_and_answer(self, channel: Channel, language: str, skill: str, index: int) -> None:
        """The common path, weighted up: a simple contact arrives and an open offer is taken."""
        self.enqueue(channel, language, {skill: 1}, {}, 0, False)
        self.accept(index, False)

    @rule(index=st.integers(0, 100))
    def reject(self, index: int) -> None:
        cid = self.pick(self.contacts_in("offered"), index)
        if cid:
            aid = self.model.contacts[cid].agent
            assert aid is not None
            self.both(
                self.store.reject(cid, aid, now=self.model.now),
                lambda: self.model.reject(cid, aid),
            )

    @rule(index=st.integers(0, 100))
    def complete(self, index: int) -> None:
        cid = self.pick(self.contacts_in("assigned", "offered"), index)
        if cid:
            self.both(
                self.store.complete(cid, now=self.model.now), lambda: self.model.complete(cid)
            )

    @rule(index=st.integers(0, 100))
    def cancel(self, index: int) -> None:
        cid = self.pick(sorted(self.model.contacts), index)
        if cid:
            self.both(self.store.cancel(cid, now=self.model.now), lambda: self.model.cancel(cid))

    @rule(
        index=st.integers(0, 100),
        skills=contact_skills,
        language=st.one_of(st.none(), st.sampled_from(LANGS)),
        exclude=st.booleans(),
    )
    def transfer(
        self, index: int, skills: dict[str, int], language: str | None, exclude: bool
    ) -> None:
        cid = self.pick(self.contacts_in("assigned", "queued", "offered"), index)
        if cid:
            self.both(
                self.store.transfer(
                    cid,
                    skills=skills,
                    language=language,
                    exclude_agent=exclude,
                    now=self.model.now,
                ),
                lambda: self.model.transfer(cid, skills, language, exclude),
            )

    @rule(index=st.integers(0, 100))
    def requeue_front(self, index: int) -> None:
        cid = self.pick(self.contacts_in("assigned", "offered"), index)
        if cid:
            self.both(
                self.store.requeue_front(cid, now=self.model.now),
                lambda: self.model.requeue_front(cid),
            )

    @rule(
        index=st.integers(0, 100),
        channel=st.sampled_from(list(Channel)),
        among=st.sampled_from(["held", "held", "held", "queued", "any"]),
    )
    def change_channel(self, index: int, channel: Channel, among: str) -> None:
        """An upgrade (or downgrade) inside the session; mostly of a contact an agent holds."""
        states = {
            "held": ("offered", "assigned"),
            "queued": ("queued",),
            "any": ("queued", "offered", "assigned", "completed", "cancelled"),
        }[among]
        cid = self.pick(self.contacts_in(*states), index)
        if not cid:
            return
        store_exc: InvalidStateError | None = None
        model_exc: InvalidStateError | None = None
        status = None
        try:
            status = self.loop.run_until_complete(
                self.store.change_channel(cid, channel, now=self.model.now)
            )
        except InvalidStateError as exc:
            store_exc = exc
        try:
            state = self.model.change_channel(cid, channel.value)
        except InvalidStateError as exc:
            model_exc = exc
        assert _refusal(store_exc) == _refusal(model_exc), (store_exc, model_exc)
        if status is not None:
            assert (status.state.value, status.channel) == (state, channel)

    @rule(index=st.integers(0, 100))
    def wrapup_done(self, index: int) -> None:
        aid = self.pick(sorted(self.model.agents), index)
        if aid:
            self.both(
                self.store.wrapup_done(aid, now=self.model.now),
                lambda: self.model.wrapup_done(aid),
            )

    @rule(dt=st.sampled_from([1, 5, 10, 21, 31, 61, 95]))
    def tick(self, dt: int) -> None:
        self.model.now += dt

    @rule()
    def process_due(self) -> None:
        handled = self.loop.run_until_complete(self.store.process_due(now=self.model.now))
        assert handled == self.model.process_due()

    # --- checks ---------------------------------------------------------------------------------

    def read(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, list[str]], dict[str, float]]:
        async def go() -> Any:
            agents = {a.id: a for a in await self.store.agent_views()}
            contacts = {c.id: c for c in await self.store.contact_views()}
            queues = {
                f"{lang}:{ch.value}": await self.store.queue_ids(lang, ch)
                for lang in LANGS
                for ch in CHANNELS
            }
            due = dict(await self.client.zrange(self.store.keys.due, 0, -1, withscores=True))
            return agents, contacts, queues, due

        result: tuple[dict[str, Any], dict[str, Any], dict[str, list[str]], dict[str, float]]
        result = self.loop.run_until_complete(go())
        return result

    @invariant()
    def redis_matches_model_and_invariants_hold(self) -> None:
        agents, contacts, queues, due = self.read()
        m = self.model

        # same state as the reference model
        assert set(agents) == set(m.agents)
        for aid, a in agents.items():
            r = m.agents[aid]
            assert (a.presence, a.wrap_until, a.held, a.idle, a.routed, a.misses) == (
                r.presence,
                r.wrap_until,
                r.held,
                r.idle,
                r.routed,
                r.misses,
            ), aid
            assert _norm_load(a.load) == _norm_load(r.load), aid
        assert set(contacts) == set(m.contacts)
        for cid, c in contacts.items():
            r = m.contacts[cid]
            assert (
                c.state,
                c.channel,
                c.agent,
                c.excluded,
                c.score,
                c.language,
                c.req,
                c.deadline,
            ) == (
                r.state,
                r.channel,
                r.agent,
                r.excluded,
                r.score,
                r.language,
                r.req,
                r.deadline,
            ), cid
        for key, ids in queues.items():
            lang, ch = key.split(":")
            assert ids == [c.id for c in m.queued() if (c.language, c.channel) == (lang, ch)]
        assert due == m.due
        assert not m.fifo_violations, m.fifo_violations

        # invariants, on the Redis state alone
        holders: dict[str, list[str]] = {}
        for a in agents.values():
            for cid in a.held:
                holders.setdefault(cid, []).append(a.id)
            for ch in CHANNELS:
                held_here = [c for c in a.held if contacts[c].channel == ch.value]
                assert a.load.get(ch.value, 0) == len(held_here), (a.id, ch)
                assert len(held_here) <= a.capacity.get(ch.value, 0), ("over capacity", a.id, ch)
            exclusive = [ch for ch in POLICY.exclusive_channels if a.load.get(ch.value, 0) > 0]
            assert len(exclusive) <= 1, ("two exclusive channels at once", a.id, exclusive)
            if any(how == "offered" for how in a.held.values()):
                assert a.presence == "available", ("offer held by an agent not available", a.id)
        in_queues = [cid for ids in queues.values() for cid in ids]
        assert len(in_queues) == len(set(in_queues)), "a contact in two queues"
        for cid in range(self.next_contact):
            c = contacts[f"c{cid}"]  # nothing lost
            assert c.state in ("queued", "offered", "assigned", "completed", "cancelled")
            assert (c.id in in_queues) == (c.state == "queued"), c.id
            if c.state == "queued":
                assert c.id in queues[f"{c.language}:{c.channel}"]
            if c.state in ("offered", "assigned"):
                assert holders.get(c.id) == [c.agent], ("held by", holders.get(c.id), c.agent)
                assert agents[c.agent].held[c.id] == c.state
                assert c.language in agents[c.agent].languages, "language violated"
            else:
                assert c.id not in holders, ("released contact still held", c.id)

    @invariant()
    def work_conserving_when_timers_are_processed(self) -> None:
        # once every deadline is processed, no agent taking offers could serve a waiting contact
        if any(t <= self.model.now for t in self.model.due.values()):
            return
        queued = self.model.queued()
        for a in self.model.agents.values():
            if takes_offers(a):
                for c in queued:
                    assert not can_serve(POLICY, a, c, self.model.now), (a.id, c.id)


TestRouter = RouterMachine.TestCase  # for discovery by name only; run below with settings
del TestRouter


@pytest.mark.slow
def test_router_matches_reference_model(redis_target: RedisTarget) -> None:
    RouterMachine.target = redis_target
    run_state_machine_as_test(
        RouterMachine,
        settings=settings(
            # fewer on a cluster: the scripts' logic is the plain run's, this shows they run
            # there (and the cluster client is slower per call)
            max_examples=15 if redis_target.cluster else 80,
            stateful_step_count=50,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
