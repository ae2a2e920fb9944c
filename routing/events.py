"""Routing events on one Redis Stream, read through consumer groups.

The scripts append a decision's events (queued, offered, agent state ...) as one stream entry
(one XADD) inside the same atomic step as the decision, so an event exists exactly when its
decision happened. Readers get the events one by one, in order. Every instance reads with its
own consumer name in a shared group (each decision's events delivered to one instance) or with
its own group (every instance sees every event, e.g. to reach the WebSocket it holds). A
consumer that restarts first re-reads what it was given but did not acknowledge, then continues
after the group's last delivered entry: nothing is lost as long as the stream was not trimmed
past it (``events_maxlen`` entries, i.e. decisions).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from routing.keys import RouterKeys
from routing.models import EventType, RoutingEvent
from routing.store import _explanation


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _entries(reply: Any) -> list[tuple[Any, Any]]:
    """Entries of a one-stream XREAD(GROUP) reply, RESP2 (list) or RESP3 (dict)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return list(next(iter(reply.values()))[0] if reply else [])
    return list(reply[0][1])


def _event(event_id: str, time: float, item: Mapping[str, Any]) -> RoutingEvent:
    data = item.get("data")
    data = dict(data) if isinstance(data, dict) else {}
    return RoutingEvent(
        id=event_id,
        type=EventType(item["type"]),
        time=time,
        contact_id=item.get("contact_id"),
        agent_id=item.get("agent_id"),
        explanation=_explanation(item.get("explanation") or data.pop("explanation", None)),
        data=data,
    )


def parse_entry(entry_id: str | bytes, fields: Mapping[Any, Any]) -> list[RoutingEvent]:
    """The events of one stream entry (one decision), in order; ids ``<entry id>/<n>``."""
    f = {_s(k): _s(v) for k, v in fields.items()}
    entry, time = _s(entry_id), float(f["time"])
    if "events" in f:
        items = json.loads(f["events"])
    else:
        # one event per entry, as written before a decision's events shared one entry: a
        # stream (or a group's unacknowledged entries) may still hold some after an upgrade
        items = [{**f, "data": json.loads(f["data"]) if "data" in f else {}}]
    return [_event(f"{entry}/{n}", time, item) for n, item in enumerate(items)]


class EventReader:
    """One consumer of a consumer group on the routing event stream."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        group: str,
        consumer: str,
        prefix: str = "cc:rt",
        start: str = "0",
        count: int = 100,
    ) -> None:
        self.redis = redis
        self.group = group
        self.consumer = consumer
        self.stream = RouterKeys(prefix).events
        self.start = start  # where a new group begins: "0" = the whole stream, "$" = new only
        self.count = count
        self._ready = False
        self._pending_from: str | None = "0"  # re-read our unacknowledged entries first
        # entry id -> ids of its events delivered here and not acknowledged yet: an entry is
        # acknowledged in Redis once all of its events are
        self._open: dict[str, set[str]] = {}

    def _deliver(self, entries: Sequence[tuple[Any, Any]]) -> list[RoutingEvent]:
        out: list[RoutingEvent] = []
        for entry_id, fields in entries:
            if fields:
                events = parse_entry(entry_id, fields)
                self._open[_s(entry_id)] = {e.id for e in events}
                out += events
        return out

    async def _ensure_group(self) -> None:
        if self._ready:
            return
        try:
            await self.redis.xgroup_create(self.stream, self.group, id=self.start, mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._ready = True

    async def read(self, block_ms: int | None = 1000) -> list[RoutingEvent]:
        """Next events for this consumer: first its own unacknowledged ones, then new ones.

        ``block_ms`` None or 0 does not block.
        """
        await self._ensure_group()
        if self._pending_from is not None:
            reply: Any = await self.redis.xreadgroup(
                self.group, self.consumer, {self.stream: self._pending_from}, count=self.count
            )
            entries = _entries(reply)
            if entries:
                self._pending_from = _s(entries[-1][0])
                # an entry trimmed from the stream comes back without fields: acknowledge it
                gone = [_s(i) for i, f in entries if not f]
                if gone:
                    await self.ack(gone)
                return self._deliver(entries)
            self._pending_from = None
        reply = await self.redis.xreadgroup(
            self.group,
            self.consumer,
            {self.stream: ">"},
            count=self.count,
            block=block_ms or None,
        )
        return self._deliver(_entries(reply))

    async def ack(self, ids: Sequence[str] | RoutingEvent | Sequence[RoutingEvent]) -> int:
        """Acknowledge events (or their ids, or entry ids) once handled; returns how many
        stream entries that completed.

        An entry (a decision) is acknowledged in Redis once every one of its events delivered
        here is: a consumer that dies halfway through a decision gets all of it again.
        """
        if isinstance(ids, RoutingEvent):
            ids = [ids]
        done: list[str] = []
        for i in ids:
            event_id = i.id if isinstance(i, RoutingEvent) else i
            entry = event_id.partition("/")[0]
            left = self._open.get(entry)
            if left is not None and entry != event_id:
                left.discard(event_id)
                if left:
                    continue
            self._open.pop(entry, None)
            if entry not in done:
                done.append(entry)
        if not done:
            return 0
        return int(await self.redis.xack(self.stream, self.group, *done))

    async def claim_stale(self, min_idle_ms: int) -> list[RoutingEvent]:
        """Take over events another consumer of the group received but never acknowledged."""
        await self._ensure_group()
        reply: Any = await self.redis.xautoclaim(
            self.stream, self.group, self.consumer, min_idle_ms, start_id="0-0", count=self.count
        )
        entries = reply[1] if len(reply) > 1 else []
        return self._deliver(entries)


async def read_all(redis: aioredis.Redis, *, prefix: str = "cc:rt") -> list[RoutingEvent]:
    """Every event still in the stream, oldest first (for checks and tools)."""
    stream = RouterKeys(prefix).events
    out: list[RoutingEvent] = []
    last = "-"
    while True:
        entries: Any = await redis.xrange(stream, min=last, count=1000)
        if last != "-":
            entries = entries[1:]
        if not entries:
            return out
        out += [e for i, f in entries for e in parse_entry(i, f)]
        last = _s(entries[-1][0])
