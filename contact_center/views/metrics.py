"""``GET /metrics``: Prometheus text, for operators (a bearer token, or loopback only).

Three sources: the instruments of ``contact_center.metrics`` (updated as things happen; summed
over the workers in multiprocess mode); per-process state that a sampling task copies into
them every ``SAMPLE_S`` (sockets, media calls, relay drops, recorder failures); and what is
read at scrape time for the whole system (contacts by state from the database, queues and
advisors from the router, unsealed recordings on disk, whether the database and Redis answer).
The last kind is the same from every instance: aggregate it with ``max``, not ``sum``.
Routing events are counted by a consumer group of their own, so each once, wherever it is read.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import func
from sqlmodel import col, select

from contact_center import appkeys, metrics
from contact_center.background import Loops
from contact_center.contacts.states import ContactState
from contact_center.db.engine import reading
from contact_center.db.models import Contact
from contact_center.openapi import Response, operation
from contact_center.views.health import readiness
from recordings.manifest import MANIFEST
from routing.events import EventReader
from routing.models import AgentState
from routing.scoring import derive_state

log = logging.getLogger(__name__)

SAMPLE_S = 5.0
EVENTS_GROUP = "metrics"
OPEN_STATES = [s.value for s in ContactState if s not in (ContactState.ENDED, ContactState.ABANDONED)]
MEDIA_STATES = [ContactState.CONNECTED.value, ContactState.WRAP_UP.value]


class _Families:
    """A collector of families worked out before the scrape (``collect`` must not await)."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


def _authorized(request: web.Request) -> None:
    token = request.app[appkeys.SETTINGS].metrics_token
    if token is not None and token.get_secret_value():
        given = request.headers.get("Authorization", "")
        expected = f"Bearer {token.get_secret_value()}"
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise web.HTTPUnauthorized(
                text="A bearer token is needed.", headers={"WWW-Authenticate": "Bearer"}
            )
        return
    try:
        loopback = ipaddress.ip_address(request.remote or "").is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise web.HTTPForbidden(text="Set CC_METRICS_TOKEN to scrape from another machine.")


async def _contacts(app: web.Application) -> list[Metric]:
    async with reading(app[appkeys.DB]) as session:
        rows = (
            await session.exec(
                select(Contact.state, func.count())
                .where(col(Contact.state).in_(OPEN_STATES))
                .group_by(Contact.state)
            )
        ).all()
    counts = dict.fromkeys(OPEN_STATES, 0) | {state: int(n) for state, n in rows}
    family = GaugeMetricFamily("cc_contacts", "Open contacts, by state", labels=["state"])
    for state, n in counts.items():
        family.add_metric([state], n)
    return [family]


async def _router(app: web.Application) -> list[Metric]:
    router = app[appkeys.ROUTER]
    now = time.time()
    contacts, agents = await asyncio.gather(router.contact_views(), router.agent_views())
    languages = list(router.policy.languages)
    channels = ["text", "voice", "video"]
    waiting = {(lang, ch): 0 for lang in languages for ch in channels}
    longest = dict.fromkeys(waiting, 0.0)
    for contact in contacts:
        if contact.state != "queued":
            continue
        key = (contact.language, contact.channel)
        waiting[key] = waiting.get(key, 0) + 1
        longest[key] = max(longest.get(key, 0.0), now - contact.enqueued_at)
    queue = GaugeMetricFamily(
        "cc_queue_waiting", "Contacts waiting in the queue", labels=["language", "channel"]
    )
    wait = GaugeMetricFamily(
        "cc_queue_longest_wait_seconds", "How long the longest-waiting contact has waited",
        labels=["language", "channel"],
    )
    for key in waiting:
        queue.add_metric(list(key), waiting[key])
        wait.add_metric(list(key), round(longest[key], 3))
    by_state = {(lang, s.value): 0 for lang in languages for s in AgentState}
    for agent in agents:
        state = derive_state(agent).value
        for language in agent.languages:
            by_state[(language, state)] = by_state.get((language, state), 0) + 1
    advisors = GaugeMetricFamily(
        "cc_advisors", "Advisors known to the router, by language and state",
        labels=["language", "state"],
    )
    for key, n in by_state.items():
        advisors.add_metric(list(key), n)
    return [queue, wait, advisors]


def unsealed_recordings(root: Path, now: float) -> tuple[int, float]:
    """(how many recording directories hold files but no manifest, seconds since the oldest of
    them was last written). A live call writes all the time; one silent for long is stuck."""
    count, oldest = 0, 0.0
    if not root.is_dir():
        return 0, 0.0
    with os.scandir(root) as entries:
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False):
                continue
            with os.scandir(entry.path) as inside:
                files = [f for f in inside if f.is_file(follow_symlinks=False)]
            if not files or any(f.name == MANIFEST for f in files):
                continue
            count += 1
            oldest = max(oldest, now - max(f.stat().st_mtime for f in files))
    return count, oldest


async def _recordings(app: web.Application) -> list[Metric]:
    root = app[appkeys.SETTINGS].recordings_dir
    assert root is not None
    count, oldest = await asyncio.to_thread(unsealed_recordings, root, time.time())
    return [
        GaugeMetricFamily(
            "cc_recordings_unsealed", "Recording directories with files and no manifest", count
        ),
        GaugeMetricFamily(
            "cc_recordings_unsealed_oldest_seconds",
            "Seconds since the least recently written unsealed recording was written", oldest,
        ),
    ]


async def _dependencies(app: web.Application) -> list[Metric]:
    up = GaugeMetricFamily("cc_up", "Whether a service we need answers (1) or not (0)", labels=["service"])
    for service, state in (await readiness(app, limit_s=1.0)).items():
        up.add_metric([service], 1 if state == "ok" else 0)
    return [up]


async def scrape_time_families(app: web.Application) -> list[Metric]:
    """Everything read at scrape time; a part whose source is down is left out (and said)."""
    parts = {"contacts": _contacts, "router": _router, "recordings": _recordings}
    families = await _dependencies(app)
    ok = GaugeMetricFamily(
        "cc_metrics_part_ok", "Whether this part of the scrape could be read", labels=["part"]
    )
    results = await asyncio.gather(*(read(app) for read in parts.values()), return_exceptions=True)
    for name, result in zip(parts, results, strict=True):
        if isinstance(result, BaseException):
            log.warning("metrics: %s could not be read: %r", name, result)
            ok.add_metric([name], 0)
        else:
            ok.add_metric([name], 1)
            families.extend(result)
    return [*families, ok]


@operation(
    "Prometheus metrics", tag="operations", security=("metricsToken",),
    description="The series are listed in the README. Without CC_METRICS_TOKEN, loopback only.",
    responses={
        200: Response("Prometheus text exposition", content_type="text/plain"),
        401: "No or a wrong bearer token",
        403: "No token is set and the request is not from this machine",
    },
)
async def metrics_view(request: web.Request) -> web.Response:
    _authorized(request)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        instruments = generate_latest(registry)
    else:
        instruments = generate_latest(REGISTRY)
    now = CollectorRegistry(auto_describe=False)
    now.register(_Families(await scrape_time_families(request.app)))
    return web.Response(
        body=instruments + generate_latest(now), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


class Sampler:
    """Copies this process's state into the instruments: sockets, calls, relay drops, failed
    recorder writers (counted once per file; a call that ends between two samples may take its
    last drops or a failure with it)."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self._dropped: dict[tuple[str, str], int] = {}
        self._failed: set[tuple[str, str]] = set()

    async def sample(self) -> None:
        app = self.app
        metrics.WS_CONNECTIONS.set(len(app[appkeys.CONNECTIONS]))
        hub = app[appkeys.MEDIA]
        metrics.MEDIA_CALLS.set(len(hub))
        if not len(hub):
            self._dropped.clear()
            return
        ids = await self.contacts_with_media()
        seen: dict[tuple[str, str], int] = {}
        for contact_id in ids:
            call = hub.get(contact_id)
            if call is None:
                continue
            for key, stats in call.relay_stats().items():
                dropped = int(str(stats.get("frames_dropped", 0)))
                seen[(contact_id, key)] = dropped
                before = self._dropped.get((contact_id, key), 0)
                if dropped > before:
                    metrics.RELAY_FRAMES_DROPPED.inc(dropped - before)
            recorder = call.recorder
            for name, stats in (recorder.stats() if recorder else {}).items():
                if stats.get("error") and (contact_id, name) not in self._failed:
                    self._failed.add((contact_id, name))
                    metrics.RECORDING_FAILURES.inc()
                    log.error("recording %s/%s failed: %s", contact_id, name, stats["error"])
        self._dropped = seen
        self._failed = {f for f in self._failed if f[0] in ids}

    async def contacts_with_media(self) -> list[str]:
        """The contacts of this instance that may have a call here (the hub lists none)."""
        async with reading(self.app[appkeys.DB]) as session:
            rows = await session.exec(
                select(Contact.id).where(
                    Contact.instance == self.app[appkeys.INSTANCE_ID],
                    col(Contact.state).in_(MEDIA_STATES),
                )
            )
            return list(rows.all())


def _count_router_events(reader: EventReader) -> Callable[[], Awaitable[None]]:
    async def round_() -> None:
        events = await reader.read(block_ms=1000)
        for event in events:
            metrics.count_router_event(event.type.value)
        if events:
            await reader.ack(events)

    return round_


async def metrics_ctx(app: web.Application) -> AsyncIterator[None]:
    """The sampling task, the routing-event counter, and timing of routing decisions."""
    app[appkeys.ROUTER].on_decision = metrics.observe_routing
    reader = EventReader(
        app[appkeys.REDIS], group=EVENTS_GROUP, consumer=app[appkeys.INSTANCE_ID], start="$"
    )
    loops = Loops()
    loops.every(SAMPLE_S, Sampler(app).sample, "metrics sampling")
    loops.until_stopped(_count_router_events(reader), "metrics: router event stream")
    try:
        yield
    finally:
        await loops.stop(within_s=5)


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(metrics_ctx)
    app.router.add_get("/metrics", metrics_view)
