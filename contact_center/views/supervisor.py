"""The supervisor's live floor: a Server-Sent Events feed and the supervisor's actions.

One ``SupervisorFeed`` per instance tails the router's event stream (XREAD, no consumer group:
every instance sees every event) and, on each batch of events or every ``TICK_S`` (waits grow
without events), builds one frame and hands it to the local subscribers, each a bounded queue
that keeps only the newest frames (a slow browser cannot grow memory). A frame is the router's
snapshot plus advisors by name (state, time in state, contacts held, capacity used) and the
waiting contacts (offered to whom, at risk or stranded) and the newest supervisor alarms
(``contacts.alarms``: a recorder that failed...), read from their stream as they are raised (the
feed's XREAD waits on it too, so an alarm is pushed at once). Every ``SAMPLE_S`` one instance (a
per-bucket lock) appends a sample to the last hour's history in Redis, for the charts.

Actions: force an advisor away or offline; re-queue a contact (offered or connected) at the
front of its queue, away from its advisor. Each is audited.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError
from sqlmodel import col, select

from contact_center import appkeys, redis_keys
from contact_center.background import stop_tasks
from contact_center.contacts.alarms import Alarm, latest_alarms, read_alarms
from contact_center.contacts.core import advisor_ref, agent_id_of
from contact_center.contacts.states import ContactState, InvalidTransition
from contact_center.db.engine import reading
from contact_center.db.models import Contact, Role, User
from contact_center.identity import audit
from contact_center.identity.auth import require_role
from contact_center.openapi import operation
from routing.errors import InvalidStateError, UnknownAgentError, UnknownContactError
from routing.models import CHANNELS, AgentState
from routing.policy import Policy
from routing.scoring import AgentView, ContactView, can_serve, derive_state
from routing.store import RouterStore

log = logging.getLogger(__name__)

TICK_S = 2.0
SAMPLE_S = 5.0
HISTORY_S = 3600.0
HISTORY_LEN = int(HISTORY_S / SAMPLE_S)
#: A contact an eligible, free advisor could take but that is still queued after this long was
#: missed by the router: flagged as stranded (``not_offered``).
NOT_OFFERED_AFTER_S = 5.0
NAMES_TTL_S = 5.0
KEEPALIVE_S = 15.0
SUBSCRIBER_QUEUE = 4
FORCEABLE = (AgentState.AWAY, AgentState.OFFLINE)
#: The newest alarms a frame carries, and the window of its count of recent ones.
ALARMS_SHOWN = 20
ALARMS_RECENT_S = 3600.0


# ------------------------------------------------------------------ pure parts of a frame


def stranded_reason(
    policy: Policy,
    contact: ContactView,
    agents: Iterable[AgentView],
    at_risk: Mapping[str, Mapping[str, Any]],
    now: float,
) -> str | None:
    """Why a waiting contact is stranded while advisors are available, or None.

    ``not_offered``: an available advisor could take it now, yet it has waited more than
    ``NOT_OFFERED_AFTER_S`` unoffered. ``no_agent`` / ``all_excluded`` (the router's at-risk
    reasons): nobody available may take it although some advisors sit available.
    """
    if contact.state != "queued":
        return None
    agents = list(agents)
    if now - contact.enqueued_at > NOT_OFFERED_AFTER_S and any(
        can_serve(policy, a, contact, now) for a in agents
    ):
        return "not_offered"
    risk = at_risk.get(contact.id)
    if risk and any(a.presence == AgentState.AVAILABLE for a in agents):
        return str(risk.get("reason") or "no_agent")
    return None


def advisor_rows(
    agents: Iterable[AgentView], names: Mapping[str, str], since: Mapping[str, float], now: float
) -> list[dict[str, Any]]:
    rows = []
    for a in agents:
        state = derive_state(a).value
        rows.append(
            {
                "id": a.id,
                "name": names.get(a.id, f"#{a.id}"),
                "state": state,
                "in_state_s": round(max(0.0, now - since.get(a.id, now)), 1),
                "held": sum(1 for how in a.held.values() if how == "assigned"),
                "offered": sum(1 for how in a.held.values() if how == "offered"),
                "assigned": sorted(c for c, how in a.held.items() if how == "assigned"),
                "load": {ch.value: a.load.get(ch.value, 0) for ch in CHANNELS},
                "capacity": {ch.value: a.capacity.get(ch.value, 0) for ch in CHANNELS},
                "languages": sorted(a.languages),
                "skills": a.skills,
            }
        )
    order = {"available": 0, "busy": 1, "wrap_up": 2, "away": 3, "offline": 4}
    return sorted(rows, key=lambda r: (order.get(r["state"], 9), r["name"].lower()))


def waiting_rows(
    policy: Policy,
    contacts: Iterable[ContactView],
    agents: list[AgentView],
    names: Mapping[str, str],
    customers: Mapping[str, str],
    at_risk: list[dict[str, Any]],
    now: float,
) -> list[dict[str, Any]]:
    risks = {r["contact_id"]: r for r in at_risk}
    rows = []
    for c in contacts:
        if c.state not in ("queued", "offered"):
            continue
        risk = risks.get(c.id)
        rows.append(
            {
                "contact_id": c.id,
                "customer": customers.get(c.id, ""),
                "language": c.language,
                "channel": c.channel,
                "skills": c.req,
                "priority": c.priority,
                "vip": c.vip,
                "waited_s": round(now - c.enqueued_at, 1),
                "state": c.state,
                "offered_to": names.get(c.agent, f"#{c.agent}") if c.agent else None,
                "offered_to_id": c.agent,
                "at_risk": risk["reason"] if risk else None,
                "stranded": stranded_reason(policy, c, agents, risks, now),
            }
        )
    return sorted(rows, key=lambda r: -r["waited_s"])


def raised_at(alarm: Alarm) -> float:
    """When an alarm was raised (Redis's clock, from its stream id), in seconds."""
    return int(alarm.id.split("-", 1)[0]) / 1000


def alarm_rows(alarms: Iterable[Alarm], now: float) -> tuple[list[dict[str, Any]], int]:
    """The alarms newest first, and how many were raised within ``ALARMS_RECENT_S``."""
    rows = [
        {**a.model_dump(mode="json"), "age_s": round(max(0.0, now - raised_at(a)), 1)}
        for a in reversed(list(alarms))
    ]
    return rows, sum(1 for r in rows if r["age_s"] <= ALARMS_RECENT_S)


def _stream_entries(reply: Any) -> Iterator[tuple[str, list[Any]]]:
    """(stream, entries) of an XREAD reply, RESP2 (a list of pairs) or RESP3 (a map)."""
    if not reply:
        return
    if isinstance(reply, Mapping):
        for name, value in reply.items():
            yield str(name), (value[0] if value else [])
    else:
        for name, entries in reply:
            yield str(name), entries


def sample_of(snapshot: Mapping[str, Any], waiting: list[dict[str, Any]]) -> dict[str, Any]:
    """One point of the charts: queue length, longest wait, service level (None before any)."""
    answered = sum(g["answered"] for g in snapshot.get("groups", ()))
    in_sl = sum(g["answered_in_sl"] for g in snapshot.get("groups", ()))
    return {
        "t": snapshot["time"],
        "waiting": len(waiting),
        "longest_wait_s": max((w["waited_s"] for w in waiting), default=0.0),
        "service_level": in_sl / answered if answered else None,
    }


# ------------------------------------------------------------------ the feed


class SupervisorFeed:
    """Builds frames on router events (or every TICK_S) and hands them to local subscribers."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self._subscribers: set[asyncio.Queue[str | None]] = set()
        self._names: dict[str, str] = {}
        self._names_at = 0.0
        self._last_sample = 0.0
        self._alarms: deque[Alarm] = deque(maxlen=ALARMS_SHOWN)
        self._alarm_id: str | None = None  # the last alarm read; None before the first read
        self._alarms_lock = asyncio.Lock()

    @property
    def router(self) -> RouterStore:
        return self.app[appkeys.ROUTER]

    def subscribe(self) -> asyncio.Queue[str | None]:
        queue: asyncio.Queue[str | None] = asyncio.Queue(SUBSCRIBER_QUEUE)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[str | None]) -> None:
        self._subscribers.discard(queue)

    def _offer(self, queue: asyncio.Queue[str | None], item: str | None) -> None:
        if queue.full():
            queue.get_nowait()  # frames are whole states: the oldest is the one to lose
        queue.put_nowait(item)

    def broadcast(self, frame: str) -> None:
        for queue in list(self._subscribers):
            self._offer(queue, frame)

    def close(self) -> None:
        """Tell every open feed to end (on shutdown)."""
        for queue in list(self._subscribers):
            self._offer(queue, None)

    def names_changed(self) -> None:
        self._names_at = 0.0

    async def _advisor_names(self, agents: Iterable[AgentView] = ()) -> dict[str, str]:
        stale = time.monotonic() - self._names_at > NAMES_TTL_S
        if stale or any(a.id not in self._names for a in agents):  # a new advisor: read now
            async with reading(self.app[appkeys.DB]) as session:
                users = await session.exec(select(User).where(User.role == Role.ADVISOR))
                self._names = {agent_id_of(u.id): u.display_name for u in users if u.id}
            self._names_at = time.monotonic()
        return self._names

    async def _customers(self, ids: list[str]) -> dict[str, str]:
        if not ids:
            return {}
        async with reading(self.app[appkeys.DB]) as session:
            rows = await session.exec(select(Contact).where(col(Contact.id).in_(ids)))
            return {c.id: c.customer_name for c in rows}

    async def _since(self, agents: list[AgentView], now: float) -> dict[str, float]:
        """When each agent entered its current state (kept in Redis: every instance agrees)."""
        redis = self.app[appkeys.REDIS]
        stored = await redis.hgetall(redis_keys.SUPERVISOR_STATE_SINCE)
        since: dict[str, float] = {}
        changed: dict[Any, Any] = {}
        for a in agents:
            state = derive_state(a).value
            old = json.loads(stored[a.id]) if a.id in stored else None
            if old and old.get("state") == state:
                since[a.id] = float(old["since"])
            else:
                since[a.id] = now
                changed[a.id] = json.dumps({"state": state, "since": now})
        if changed:
            await redis.hset(redis_keys.SUPERVISOR_STATE_SINCE, mapping=changed)
        return since

    async def catch_up_alarms(self) -> None:
        """Read the alarms raised since the last one read (at first, the newest ALARMS_SHOWN)."""
        redis = self.app[appkeys.REDIS]
        async with self._alarms_lock:  # the feed's loop and a new subscriber's first frame
            if self._alarm_id is None:
                latest = await latest_alarms(redis, count=ALARMS_SHOWN)
                self._alarms.extend(latest)
                self._alarm_id = latest[-1].id if latest else "0-0"
                return
            while True:
                fresh = await read_alarms(redis, after=self._alarm_id, count=500)
                if not fresh:
                    return
                self._alarms.extend(fresh)  # only the newest ALARMS_SHOWN stay
                self._alarm_id = fresh[-1].id

    async def history(self) -> list[dict[str, Any]]:
        redis = self.app[appkeys.REDIS]
        cutoff = time.time() - HISTORY_S
        points = [json.loads(p) for p in await redis.lrange(redis_keys.SUPERVISOR_HISTORY, 0, -1)]
        return [p for p in points if p["t"] >= cutoff]

    async def frame(self) -> dict[str, Any]:
        """The whole floor now."""
        router = self.router
        snapshot = await router.snapshot()
        now = float(snapshot["time"])
        agents = await router.agent_views()
        contacts = [c for c in await router.contact_views() if c.state in ("queued", "offered")]
        names = await self._advisor_names(agents)
        waiting = waiting_rows(
            router.policy,
            contacts,
            agents,
            names,
            await self._customers([c.id for c in contacts]),
            snapshot.get("at_risk", []),
            now,
        )
        await self.catch_up_alarms()
        alarms, recent = alarm_rows(self._alarms, now)
        return {
            "type": "floor",
            "snapshot": snapshot,
            "advisors": advisor_rows(agents, names, await self._since(agents, now), now),
            "waiting": waiting,
            "sample": sample_of(snapshot, waiting),
            "alarms": alarms,
            "alarms_recent": recent,
        }

    async def _keep_sample(self, sample: dict[str, Any]) -> None:
        """One sample per SAMPLE_S bucket, whichever instance gets there first."""
        bucket = int(sample["t"] // SAMPLE_S)
        redis = self.app[appkeys.REDIS]
        if await redis.set(redis_keys.supervisor_sample_lock(bucket), "1", nx=True, ex=60):
            async with redis.pipeline(transaction=True) as pipe:
                pipe.rpush(redis_keys.SUPERVISOR_HISTORY, json.dumps(sample))
                pipe.ltrim(redis_keys.SUPERVISOR_HISTORY, -HISTORY_LEN, -1)
                await pipe.execute()

    async def run(self) -> None:
        """Until cancelled: wait for router events or alarms (at most TICK_S), then push and
        sample."""
        redis = self.app[appkeys.REDIS]
        stream = self.router.keys.events
        last_id = "$"
        while True:
            try:
                if self._alarm_id is None:
                    await self.catch_up_alarms()
                assert self._alarm_id is not None
                # One XREAD on both streams: the alarms are in the router's hash slot
                # (redis_keys.ALARMS), so a Redis Cluster serves it too.
                reply: Any = await redis.xread(
                    {stream: last_id, redis_keys.ALARMS: self._alarm_id},
                    count=500,
                    block=int(TICK_S * 1000),
                )
                for name, entries in _stream_entries(reply):
                    if not entries:
                        continue
                    if name == redis_keys.ALARMS:
                        await self.catch_up_alarms()  # else the next XREAD returns them again
                    else:
                        last_id = entries[-1][0]
                now = time.time()
                if not self._subscribers and now - self._last_sample < SAMPLE_S:
                    continue
                frame = await self.frame()
                if now - self._last_sample >= SAMPLE_S:
                    self._last_sample = now
                    await self._keep_sample(frame["sample"])
                if self._subscribers:
                    self.broadcast(json.dumps(frame))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("supervisor feed: error, retrying")
                await asyncio.sleep(1.0)


async def supervisor_ctx(app: web.Application) -> AsyncIterator[None]:
    """Own the feed's task: started with the app, cancelled and awaited on cleanup."""
    feed = SupervisorFeed(app)
    app[appkeys.SUPERVISOR_FEED] = feed
    task = asyncio.create_task(feed.run(), name="supervisor-feed")
    try:
        yield
    finally:
        feed.close()
        await stop_tasks([task], within_s=5)


async def _close_feeds(app: web.Application) -> None:
    if appkeys.SUPERVISOR_FEED in app:
        app[appkeys.SUPERVISOR_FEED].close()


# ------------------------------------------------------------------ handlers


def _event(name: str, data: str) -> bytes:
    return f"event: {name}\ndata: {data}\n\n".encode()


@operation(
    "The live floor as Server-Sent Events",
    tag="supervisor",
    description="`text/event-stream`: a `history` event (the last hour's chart samples), then a "
    "`floor` frame on every router event or alarm (at least every few seconds): the router's "
    "snapshot, advisors by name, the waiting contacts, a chart sample, the newest alarms "
    "(`alarms`, newest first) and how many were raised within the hour (`alarms_recent`).",
    responses={200: "OK", 400: "Bad input", 401: "Not signed in", 403: "Not allowed"},
)
@require_role(Role.SUPERVISOR, Role.ADMIN)
async def feed(request: web.Request) -> web.StreamResponse:
    """``text/event-stream``: ``history`` once, then a ``floor`` frame on each change."""
    live = request.app[appkeys.SUPERVISOR_FEED]
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    queue = live.subscribe()
    try:
        await response.write(_event("history", json.dumps(await live.history())))
        await response.write(_event("floor", json.dumps(await live.frame())))
        while True:
            try:
                async with asyncio.timeout(KEEPALIVE_S):
                    frame = await queue.get()
            except TimeoutError:
                await response.write(b": keepalive\n\n")
                continue
            if frame is None:
                break
            await response.write(_event("floor", frame))
    except ConnectionResetError:
        pass  # the browser went away
    finally:
        live.unsubscribe(queue)
    return response


class ForceState(BaseModel):
    state: AgentState


@operation(
    "Force an advisor away or offline (audited)",
    tag="supervisor",
    responses={200: "OK", 400: "Bad input", 401: "Not signed in", 403: "Not allowed"},
)
@require_role(Role.SUPERVISOR, Role.ADMIN)
async def force_state(request: web.Request) -> web.Response:
    """Set an advisor away or offline (open offers go back to the queue at once)."""
    try:
        body = ForceState.model_validate_json(await request.read())
    except ValidationError:
        raise web.HTTPBadRequest(text="state: away or offline") from None
    if body.state not in FORCEABLE:
        raise web.HTTPBadRequest(text="state: a supervisor may set away or offline")
    agent_id = request.match_info["agent_id"]
    try:
        state = await request.app[appkeys.ROUTER].set_agent_state(agent_id, body.state)
    except UnknownAgentError:
        raise web.HTTPNotFound(text=f"no advisor {agent_id} in the router") from None
    identity = request[appkeys.IDENTITY]
    await audit.record(
        request.app[appkeys.DB],
        actor=identity.ref,
        action="supervisor.force_state",
        target=f"user:{agent_id}",
        address=request.remote,
        detail={"state": body.state.value, "now": state.value},
    )
    return web.json_response({"agent_id": agent_id, "state": state.value})


@operation(
    "Put an offered or connected contact back in the queue (audited)",
    tag="supervisor",
    responses={200: "OK", 400: "Bad input", 401: "Not signed in", 403: "Not allowed"},
)
@require_role(Role.SUPERVISOR, Role.ADMIN)
async def requeue(request: web.Request) -> web.Response:
    """Take a contact from its advisor (offered or connected): front of its queue, that advisor
    excluded; the customer and the advisor are told."""
    app = request.app
    contact_id = request.match_info["contact_id"]
    svc = app[appkeys.CONTACTS]
    identity = request[appkeys.IDENTITY]
    try:
        status = await svc.router.contact_status(contact_id)
    except UnknownContactError:
        raise web.HTTPNotFound(text=f"no contact {contact_id} in the router") from None
    if status.state == "queued":
        raise web.HTTPConflict(text=f"contact {contact_id} is already waiting")
    agent_id = status.agent_id
    try:
        if status.state == "assigned":
            contact = await svc.back_to_queue(
                contact_id,
                actor=identity.ref,
                kind="requeued",
                reason="requeued",
                data={"advisor_id": agent_id, "by": identity.ref},
            )
            if agent_id:
                await svc.bus.publish(
                    advisor_ref(agent_id), svc.state_message(contact, reason="requeued_away")
                )
        await svc.router.requeue_front(contact_id)
    except (InvalidTransition, InvalidStateError) as exc:
        raise web.HTTPConflict(text=str(exc)) from None
    await audit.record(
        app[appkeys.DB],
        actor=identity.ref,
        action="supervisor.requeue",
        target=f"contact:{contact_id}",
        address=request.remote,
        detail={"from_state": status.state.value, "advisor": agent_id},
    )
    return web.json_response({"contact_id": contact_id, "state": ContactState.QUEUED.value})


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(supervisor_ctx)
    app.on_shutdown.append(_close_feeds)
    app.router.add_get("/api/supervisor/feed", feed)
    app.router.add_post("/api/supervisor/advisors/{agent_id}/state", force_state)
    app.router.add_post("/api/supervisor/contacts/{contact_id}/requeue", requeue)
