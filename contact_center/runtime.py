"""The session machinery of one instance and the loops it owns, as one cleanup context.

Each loop is a task owned here: started on startup, cancelled and awaited on cleanup. Loops
survive errors (logged) so that a Redis hiccup does not stop routing for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web

from contact_center import keys
from contact_center.bus import Bus
from contact_center.config import Settings
from contact_center.media.call import MediaHub
from contact_center.media.ice import IceSettings
from contact_center.reactions import Reactions
from contact_center.sessions import Grace, SessionService
from contact_center.signalling import SESSIONS
from routing.events import EventReader
from routing.policy import load_policy
from routing.store import RouterStore
from routing.worker import RouterWorker

log = logging.getLogger(__name__)

ROUTER: web.AppKey[RouterStore] = web.AppKey("router")
MEDIA: web.AppKey[MediaHub] = web.AppKey("media")
EVENTS_GROUP = "sessions"


async def _every(interval: float, work: Callable[[], Awaitable[object]], name: str) -> None:
    while True:
        try:
            await work()
        except Exception:
            log.exception("%s failed; retrying", name)
        await asyncio.sleep(interval)


async def _consume_router_events(reactions: Reactions, reader: EventReader) -> None:
    """Mirror router decisions; each event is handled by one instance of the group."""
    while True:
        try:
            events = await reader.read(block_ms=1000)
            if not events:
                events = await reader.claim_stale(min_idle_ms=30_000)
            for event in events:
                try:
                    await reactions.handle_router_event(event)
                except Exception:
                    log.exception("router event %s (%s) failed", event.id, event.type)
                await reader.ack(event)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("router event stream: error, retrying")
            await asyncio.sleep(1.0)


def media_base_url(settings: Settings) -> str:
    """Where clients reach this very process: its own port when several workers share one."""
    if settings.media_port is None:
        return settings.public_base_url
    url = urlsplit(settings.public_base_url)
    host = f"[{url.hostname}]" if url.hostname and ":" in url.hostname else url.hostname
    return urlunsplit((url.scheme, f"{host}:{settings.media_port}", url.path, "", ""))


def media_url(public_base_url: str) -> str:
    return public_base_url.replace("https://", "wss://", 1).replace("http://", "ws://", 1) + "/ws"


async def sessions_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    redis = app[keys.REDIS]
    router = RouterStore(redis, load_policy(settings.routing_policy))
    bus = Bus(redis)
    ice = IceSettings(
        ice_servers=settings.ice_servers, host_addresses=settings.ice_host_addresses or None
    )
    reactions_box: list[Reactions] = []
    media = MediaHub(
        ice,
        relay=settings.media_relay,
        on_event=lambda *event: reactions_box[0].media_event(*event),
    )
    svc = SessionService(
        db=app[keys.DB],
        redis=redis,
        router=router,
        bus=bus,
        media=media,
        instance_id=app[keys.INSTANCE_ID],
        media_url=media_url(media_base_url(settings)),
        grace=Grace(customer_s=settings.customer_grace_s, advisor_s=settings.advisor_grace_s),
        recordings_dir=settings.recordings_dir,
    )
    reactions = Reactions(svc)
    reactions_box.append(reactions)
    app[ROUTER], app[MEDIA], app[SESSIONS] = router, media, svc
    reader = EventReader(redis, group=EVENTS_GROUP, consumer=app[keys.INSTANCE_ID])
    tasks = [
        asyncio.create_task(bus.run(), name="bus"),
        asyncio.create_task(RouterWorker(router, interval=0.25).run(), name="router-timers"),
        asyncio.create_task(_consume_router_events(reactions, reader), name="router-events"),
        asyncio.create_task(_every(0.5, reactions.sweep_grace, "grace sweep"), name="grace"),
        asyncio.create_task(
            _every(2.0, reactions.push_positions, "queue positions"), name="positions"
        ),
        asyncio.create_task(reactions.run_media_events(), name="media-events"),
    ]
    async with asyncio.timeout(10):
        await bus.wait_ready()
    await svc.register_instance()
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            await svc.unregister_instance()
        for task in tasks:
            task.cancel()
        _, stuck = await asyncio.wait(tasks, timeout=10)
        for task in stuck:
            log.error("task %s did not stop within 10 s of being cancelled", task.get_name())
        await media.close()
