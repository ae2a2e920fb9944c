"""The Redis-backed router: every decision is one atomic Lua script (routing/lua/).

State lives in Redis only, so any number of instances may share it and a restarted instance
simply resumes; offers whose deadline passed while every instance was down are expired by the
first ``process_due`` call (``RouterWorker`` makes one at start).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import redis.asyncio as aioredis

from routing.errors import (
    ERRORS_BY_CODE,
    InvalidStateError,
    RoutingError,
    UnknownAgentError,
    UnknownContactError,
    UnsupportedLanguageError,
)
from routing.keys import RouterKeys
from routing.models import (
    CHANNELS,
    SETTABLE_STATES,
    AgentProfile,
    AgentState,
    AgentStatus,
    Assignment,
    Channel,
    ContactRequest,
    ContactState,
    ContactStatus,
    Explanation,
    Offer,
    QueuePosition,
)
from routing.policy import Policy
from routing.scoring import (
    AgentView,
    ContactView,
    at_risk,
    build_snapshot,
    derive_state,
    expected_wait,
    queue_score,
)
from routing.scripts import SCRIPT_NAMES, script_source

#: Deadlines handled per process_due script call: bounds how long one call holds Redis.
DUE_BATCH = 100


def _mapping(value: Any) -> dict[str, Any]:
    # cjson encodes an empty Lua table as {} whether it was a list or a map
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def agent_view(blob: str | bytes) -> AgentView:
    """Decode an agent's JSON state as the scripts store it."""
    d = json.loads(blob)
    return AgentView(
        id=d["id"],
        languages=frozenset(_list(d.get("langs"))),
        skills={k: int(v) for k, v in _mapping(d.get("skills")).items()},
        capacity={k: int(v) for k, v in _mapping(d.get("cap")).items()},
        presence=d["pres"],
        wrap_until=float(d.get("wrap", 0)),
        held=dict(_mapping(d.get("held"))),
        load={k: int(v) for k, v in _mapping(d.get("load")).items()},
        idle=float(d["idle"]),
        routed={k: float(v) for k, v in _mapping(d.get("rt")).items()},
        misses=int(d.get("misses", 0)),
    )


def contact_view(blob: str | bytes) -> ContactView:
    """Decode a contact's JSON state as the scripts store it."""
    d = json.loads(blob)
    return ContactView(
        id=d["id"],
        channel=d["ch"],
        language=d["lang"],
        req={k: int(v) for k, v in _mapping(d.get("req")).items()},
        opt={k: int(v) for k, v in _mapping(d.get("opt")).items()},
        priority=int(d.get("prio", 0)),
        vip=bool(d.get("vip", False)),
        enqueued_at=float(d["t"]),
        ring_since=float(d["rs"]),
        score=float(d["sc"]),
        state=d["st"],
        excluded=set(_mapping(d.get("excl"))),
        excluded_at={
            a: float(t) if isinstance(t, int | float) and not isinstance(t, bool) else 0.0
            for a, t in _mapping(d.get("excl")).items()
        },
        agent=d.get("ag"),
        offered_at=d.get("of"),
        deadline=d.get("dl"),
        accepted_at=d.get("ac"),
        finished_at=d.get("fin"),
    )


def contact_status_of(c: ContactView) -> ContactStatus:
    """A contact's public status from its decoded state."""
    return ContactStatus(
        contact_id=c.id,
        state=ContactState(c.state),
        channel=Channel(c.channel),
        language=c.language,
        skills=c.req,
        optional_skills=c.opt,
        priority=c.priority,
        vip=c.vip,
        enqueued_at=c.enqueued_at,
        queue_score=c.score,
        excluded_agents=frozenset(c.excluded),
        agent_id=c.agent,
        offered_at=c.offered_at,
        deadline=c.deadline,
        accepted_at=c.accepted_at,
        finished_at=c.finished_at,
    )


def _explanation(data: Any) -> Explanation | None:
    if isinstance(data, str | bytes):
        data = json.loads(data)
    if not isinstance(data, dict):
        return None
    data = dict(data)
    data["candidates"] = _list(data.get("candidates"))
    return Explanation.model_validate(data)


def _offer(data: Mapping[str, Any]) -> Offer:
    return Offer(
        contact_id=data["contact_id"],
        agent_id=data["agent_id"],
        channel=Channel(data["channel"]),
        offered_at=float(data["offered_at"]),
        deadline=float(data["deadline"]),
        explanation=_explanation(data.get("explanation")),
    )


class RouterStore:
    """Skills-based router over one Redis; all methods are async and take ``now`` for tests."""

    def __init__(self, redis: aioredis.Redis, policy: Policy, *, prefix: str = "cc:rt") -> None:
        self.redis = redis
        self.policy = policy
        self.keys = RouterKeys(prefix, tuple(policy.languages))
        # pre-encoded: the client then sends the key names without re-encoding them per call
        self._script_keys: list[bytes | str] = [k.encode() for k in self.keys.script_keys()]
        self._scripts = {
            name: redis.register_script(script_source(name, policy.lua_table))
            for name in SCRIPT_NAMES
        }
        #: Called with (script name, seconds) after each decision, e.g. to feed a histogram.
        self.on_decision: Callable[[str, float], None] | None = None

    @staticmethod
    def _now(now: float | None) -> float:
        # millisecond resolution: the JSON state keeps 14 significant digits
        return round(float(time.time() if now is None else now), 3)

    async def _run(self, name: str, now: float, *args: str) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            raw = await self._scripts[name](keys=self._script_keys, args=[repr(now), *args])
        finally:
            if self.on_decision is not None:
                self.on_decision(name, time.perf_counter() - started)
        data: dict[str, Any] = json.loads(raw)
        if "err" in data:
            cls = ERRORS_BY_CODE.get(data["err"], RoutingError)
            if issubclass(cls, InvalidStateError):
                raise cls(data.get("msg", data["err"]), state=data.get("state"))
            raise cls(data.get("msg", data["err"]))
        return data

    def _check_language(self, language: str) -> None:
        if language not in self.policy.languages:
            raise UnsupportedLanguageError(
                f"language {language!r} is not in the policy's languages {self.policy.languages}"
            )

    @staticmethod
    def _offers(data: Mapping[str, Any]) -> list[Offer]:
        return [_offer(o) for o in _list(data.get("offers"))]

    # --- agents -------------------------------------------------------------------------------

    async def upsert_agent(self, profile: AgentProfile, *, now: float | None = None) -> AgentState:
        """Create an agent (offline) or update its profile, keeping its live state."""
        for language in profile.languages:
            self._check_language(language)
        payload = {
            "id": profile.id,
            "langs": sorted(profile.languages),
            "skills": dict(profile.skills),
            "cap": {str(k): v for k, v in self.policy.capacity_of(profile.capacity).items()},
        }
        data = await self._run("upsert_agent", self._now(now), json.dumps(payload))
        return AgentState(data["state"])

    async def set_agent_state(
        self, agent_id: str, state: AgentState, *, now: float | None = None
    ) -> AgentState:
        """Set offline, available or away; returns the state after any resulting offers."""
        state = AgentState(state)
        if state not in SETTABLE_STATES:
            raise InvalidStateError(
                f"{state} is set by the router; an agent may choose offline, available or away",
                state=state.value,
            )
        data = await self._run("set_state", self._now(now), agent_id, state.value)
        return AgentState(data["state"])

    async def wrapup_done(self, agent_id: str, *, now: float | None = None) -> AgentState:
        """Finish wrap-up early (no-op when not in wrap-up)."""
        data = await self._run("wrapup_done", self._now(now), agent_id)
        return AgentState(data["state"])

    # --- contacts -----------------------------------------------------------------------------

    async def enqueue(self, request: ContactRequest, *, now: float | None = None) -> Offer | None:
        """Queue a contact and offer it to the best eligible agent, if any."""
        self._check_language(request.language)
        t = self._now(now)
        enqueued_at = t if request.enqueued_at is None else round(request.enqueued_at, 3)
        score = queue_score(
            self.policy, priority=request.priority, vip=request.vip, enqueued_at=enqueued_at
        )
        payload = {
            "id": request.id,
            "ch": request.channel.value,
            "lang": request.language,
            "req": dict(request.skills),
            "opt": dict(request.optional_skills),
            "prio": request.priority,
            "vip": request.vip,
            "t": enqueued_at,
            "rs": enqueued_at,
            "sc": repr(score),
            "excl": {a: t for a in request.excluded_agents},
        }
        data = await self._run("enqueue", t, json.dumps(payload))
        return next((o for o in self._offers(data) if o.contact_id == request.id), None)

    async def accept(
        self, contact_id: str, agent_id: str, *, now: float | None = None
    ) -> Assignment:
        """Accept an offer; accepting again returns the same assignment."""
        data = await self._run("accept", self._now(now), contact_id, agent_id)
        a = data["assignment"]
        return Assignment(
            contact_id=a["contact_id"],
            agent_id=a["agent_id"],
            channel=Channel(a["channel"]),
            offered_at=float(a["offered_at"]),
            accepted_at=float(a["accepted_at"]),
            explanation=_explanation(a.get("explanation")),
        )

    async def reject(
        self, contact_id: str, agent_id: str, *, now: float | None = None
    ) -> list[Offer]:
        """Decline an offer: the contact keeps its place, the agent is excluded and misses one."""
        return self._offers(await self._run("reject", self._now(now), contact_id, agent_id))

    async def complete(self, contact_id: str, *, now: float | None = None) -> list[Offer]:
        """The conversation ended: free the slot (wrap-up if the agent now holds nothing)."""
        return self._offers(await self._run("complete", self._now(now), contact_id))

    async def cancel(self, contact_id: str, *, now: float | None = None) -> list[Offer]:
        """The customer left: remove the contact wherever it is, offer included."""
        return self._offers(await self._run("cancel", self._now(now), contact_id))

    async def transfer(
        self,
        contact_id: str,
        *,
        skills: Mapping[str, int],
        language: str | None = None,
        exclude_agent: bool = True,
        optional_skills: Mapping[str, int] | None = None,
        now: float | None = None,
    ) -> Offer | None:
        """Re-queue with new skills (rings restart), keeping the original enqueue time."""
        if language is not None:
            self._check_language(language)
        checked = ContactRequest(
            id=contact_id,
            channel=Channel.TEXT,
            language=language or self.policy.languages[0],
            skills=dict(skills),
            optional_skills=dict(optional_skills or {}),
        )
        data = await self._run(
            "transfer",
            self._now(now),
            contact_id,
            json.dumps(checked.skills),
            "" if optional_skills is None else json.dumps(checked.optional_skills),
            language or "",
            "1" if exclude_agent else "0",
        )
        return next((o for o in self._offers(data) if o.contact_id == contact_id), None)

    async def requeue_front(self, contact_id: str, *, now: float | None = None) -> Offer | None:
        """The advisor dropped: the contact goes to the front of its queue, that agent excluded."""
        data = await self._run("requeue_front", self._now(now), contact_id)
        return next((o for o in self._offers(data) if o.contact_id == contact_id), None)

    async def change_channel(
        self, contact_id: str, channel: Channel, *, now: float | None = None
    ) -> ContactStatus:
        """The contact changed medium inside its session (text -> voice -> video, or back).

        Queued: it moves to the (language, new channel) queue keeping its score (its place
        among contacts of that queue) and ring, and is offered at once if an agent can take it.
        Offered or assigned: its agent's load moves to the new channel (an offer keeps its
        deadline); refused with InvalidStateError (the message names the reason) when the agent
        could not take it on the new channel: no free slot there, or it holds a contact of an
        exclusive channel other than the new one (the contact itself is not counted twice).
        The freed slot may bring the agent new offers. Same channel: no-op. Emits
        ``contact_channel_changed`` with ``from``, ``to`` and ``state``. Returns the status
        after the change (``state`` ``offered`` when a queued contact was offered at once).
        """
        channel = Channel(channel)
        data = await self._run("change_channel", self._now(now), contact_id, channel.value)
        return contact_status_of(contact_view(data["contact"]))

    # --- timers -------------------------------------------------------------------------------

    async def process_due(self, *, now: float | None = None) -> int:
        """Handle every deadline due by ``now``; safe with any number of concurrent callers."""
        t = self._now(now)
        total = 0
        while True:
            data = await self._run("process_due", t, str(DUE_BATCH))
            total += int(data["processed"])
            if int(data["fetched"]) < DUE_BATCH:
                return total

    # --- reads --------------------------------------------------------------------------------

    async def position(self, contact_id: str, *, now: float | None = None) -> QueuePosition:
        """Position (1 = next) in the contact's (language, channel) queue and expected wait.

        ``ewt_s = position * AHT / (max(1, N) * C)`` where AHT is the mean of the channel's last
        ``aht_samples`` handle times (``aht_default_s`` before any), N the logged-in agents with
        the language and the primary skill at the current ring's minimum, and C the policy's
        default concurrency of the channel. A contact that is not waiting gets position 0.
        """
        data = await self._run("position", self._now(now), contact_id)
        if data["state"] != ContactState.QUEUED:
            return QueuePosition(position=0, ewt_s=0.0)
        n = int(data["aht_n"])
        aht = float(data["aht_sum"]) / n if n else self.policy.aht_default_s
        contact = await self.contact_status(contact_id)
        concurrency = self.policy.default_capacity.get(contact.channel, 1)
        eligible = int(data["eligible"])
        ewt = expected_wait(int(data["position"]), aht, eligible, concurrency)
        if eligible == 0 and data.get("excluded_until") is not None:
            # honest: nobody may take it before the first exclusion ends
            ewt += max(0.0, float(data["excluded_until"]) - self._now(now))
        return QueuePosition(
            position=int(data["position"]),
            ewt_s=ewt,
            eligible_agents=eligible,
            aht_s=aht,
            excluded_count=int(data.get("excluded", 0)),
            at_risk=eligible == 0,
        )

    async def contact_status(self, contact_id: str) -> ContactStatus:
        """queued / offered / assigned / completed / cancelled, with the details."""
        blob = await self.redis.hget(self.keys.contacts, contact_id)
        if blob is None:
            raise UnknownContactError(f"unknown contact {contact_id}")
        return contact_status_of(contact_view(blob))

    async def agent_status(self, agent_id: str) -> AgentStatus:
        """An agent's state, load and holdings."""
        blob = await self.redis.hget(self.keys.agents, agent_id)
        if blob is None:
            raise UnknownAgentError(f"unknown agent {agent_id}")
        a = agent_view(blob)
        return AgentStatus(
            agent_id=a.id,
            state=derive_state(a),
            languages=a.languages,
            skills=a.skills,
            capacity={Channel(k): v for k, v in a.capacity.items()},
            load={ch: a.load.get(ch, 0) for ch in CHANNELS},
            offered=frozenset(c for c, how in a.held.items() if how == "offered"),
            assigned=frozenset(c for c, how in a.held.items() if how == "assigned"),
            last_idle=a.idle,
            missed_offers=a.misses,
            wrap_up_until=a.wrap_until or None,
        )

    async def agent_views(self) -> list[AgentView]:
        """Every agent (a full read: for supervisors and checks, not for routing)."""
        blobs = await self.redis.hvals(self.keys.agents)
        return [agent_view(b) for b in blobs]

    async def contact_views(self) -> list[ContactView]:
        """Every known contact (a full read: for checks, not for routing)."""
        blobs = await self.redis.hvals(self.keys.contacts)
        return [contact_view(b) for b in blobs]

    async def queue_ids(self, language: str, channel: Channel) -> list[str]:
        """Waiting contact ids of one queue, next first."""
        ids = await self.redis.zrange(self.keys.queue(language, channel.value), 0, -1)
        return [_s(i) for i in ids if isinstance(i, str | bytes)]

    async def snapshot(self, *, now: float | None = None) -> dict[str, Any]:
        """Supervisor view per (language, skill); see routing.scoring.build_snapshot."""
        t = self._now(now)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hvals(self.keys.agents)
            pipe.hgetall(self.keys.stats)
            for language in self.policy.languages:
                for ch in CHANNELS:
                    pipe.zrange(self.keys.queue(language, ch.value), 0, -1)
            results = await pipe.execute()
        agents = [agent_view(b) for b in results[0]]
        stats = {_s(k): _s(v) for k, v in results[1].items()}
        ids = [_s(i) for ids in results[2:] for i in ids]
        queued: list[ContactView] = []
        if ids:
            blobs = await self.redis.hmget(self.keys.contacts, ids)
            queued = [contact_view(b) for b in blobs if b is not None]
        snapshot = build_snapshot(self.policy, agents, queued, stats, t)
        snapshot["at_risk"] = at_risk(self.policy, agents, queued, t)
        return snapshot


def _s(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
