"""Every cleanup context of the application, in the order ``server.app`` runs them.

Each opens one resource (or starts the loops it owns) on startup, yields to the running app,
and closes it on cleanup: Rasa (for ``make run``), the database, the embedded Valkey, Redis,
the login throttle, the contact machinery with its loops, the recordings' background work, and
the bot gateway.

``rasa_ctx`` goes first: starting Rasa blocks the event loop for the 15-30 s it takes
(``RasaServices.start`` waits synchronously, and must run on the main thread so that the servers
die with this process), which is harmless only before anything else runs. ``bot_ctx`` goes after
``contacts_ctx``: the gateway needs the contact service. Each loop is a task owned here; loops
survive errors (logged) so that a Redis hiccup does not stop routing for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from aiohttp import web

from chatbot import env
from chatbot.client import RasaClient
from chatbot.services import RasaServices, ServiceError
from contact_center import appkeys, metrics, redis_client
from contact_center.background import Loops
from contact_center.bot.gateway import BotGateway
from contact_center.bus import Bus
from contact_center.config import Settings
from contact_center.contacts.core import Grace
from contact_center.contacts.media_events import MediaEvents
from contact_center.contacts.recording import Recordings
from contact_center.contacts.redelivery import redeliver_local
from contact_center.contacts.router_events import RouterEvents
from contact_center.contacts.sealing import Uploader
from contact_center.contacts.service import ContactService
from contact_center.contacts.timers import Timers
from contact_center.db.engine import check_migrated, create_engine, session_factory
from contact_center.identity.auth import GuestQuota, LoginThrottle
from contact_center.identity.bank_token import BankTokenVerifier
from contact_center.identity.passwords import PasswordChecks
from contact_center.identity.sessions import SessionStore
from contact_center.media.call import MediaHub
from contact_center.media.ice import IceSettings
from contact_center.server.valkey import EmbeddedValkey
from routing.events import EventReader
from routing.policy import load_policy
from routing.store import RouterStore
from routing.worker import RouterWorker

log = logging.getLogger(__name__)

EVENTS_GROUP = "sessions"
#: A bot turn (NLU, policies, custom action) takes 50-300 ms; a slow one should not hold the
#: customer's chat for long before they are queued instead.
TURN_TIMEOUT_S = 10.0
#: Health check when a session starts: a Rasa that does not answer this fast is treated as down.
PROBE_TIMEOUT_S = 2.0
DEFAULT_RASA_PORT = 5005
DEFAULT_ACTIONS_PORT = 5055
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
#: Sign-ins checked or waiting, per thread checking them (~6 s of work at most); beyond, 503.
PASSWORD_CHECKS_PENDING = 32

async def rasa_ctx(app: web.Application) -> AsyncIterator[None]:
    """With ``rasa_manage``, run Rasa and its action server for as long as the app runs."""
    settings = app[appkeys.SETTINGS]
    app[appkeys.RASA_SERVICES] = None
    if not settings.rasa_manage or not settings.bot_enabled:
        yield
        return
    url = urlsplit(settings.rasa_url)
    if url.hostname not in LOOPBACK_HOSTS:
        raise RuntimeError(f"CC_RASA_MANAGE starts Rasa on loopback only; CC_RASA_URL is "
                           f"{settings.rasa_url}")
    services: RasaServices | None = None
    async with aiohttp.ClientSession() as http:
        running = await RasaClient(settings.rasa_url, session=http, timeout=2).healthy()
    if running:
        log.info("Rasa already answers at %s: using it", settings.rasa_url)
    else:
        try:
            # Building the env (first run, minutes) and training are subprocesses that end:
            # a worker thread may run them. Starting the servers may not (see module doc).
            paths = await asyncio.to_thread(env.ensure)
            assert paths.env_dir is not None
            services = RasaServices(
                paths.env_dir, paths.model_path, rasa_port=url.port or DEFAULT_RASA_PORT,
                actions_port=settings.rasa_actions_port,
                log_dir=settings.var_dir / "rasa",
            )
            log.info("starting Rasa at %s", services.url)
            services.start()
        except (env.EnvError, ServiceError) as exc:
            # The contact center still works: the gateway tells customers and queues them.
            log.error("could not start Rasa: %s", exc)
            services = None
    app[appkeys.RASA_SERVICES] = services
    try:
        yield
    finally:
        if services is not None:
            services.stop()


async def valkey_ctx(app: web.Application) -> AsyncIterator[None]:
    """Start the embedded Valkey when no Redis URL is configured."""
    settings = app[appkeys.SETTINGS]
    if not settings.embedded_redis:
        app[appkeys.VALKEY] = None
        app[appkeys.REDIS_URL] = settings.redis_url or ""  # empty: the sentinels say
        yield
        return
    # Started from the event loop's thread on purpose: the parent-death signal that stops
    # Valkey if we are killed is tied to the thread that forked it.
    server = EmbeddedValkey(settings.var_dir / "valkey")
    app[appkeys.REDIS_URL] = server.start()
    app[appkeys.VALKEY] = server
    try:
        yield
    finally:
        server.stop()


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    client = redis_client.connect(app[appkeys.SETTINGS], app[appkeys.REDIS_URL] or None)
    await client.ping()  # before any task shares it (a cluster client learns the slots here)
    app[appkeys.REDIS] = client
    try:
        yield
    finally:
        await client.aclose()


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    engine = create_engine(app[appkeys.SETTINGS].database_url)
    try:
        await check_migrated(engine)
    except BaseException:
        await engine.dispose()
        raise
    app[appkeys.ENGINE] = engine
    app[appkeys.DB] = session_factory(engine)
    try:
        yield
    finally:
        await engine.dispose()


async def throttle_ctx(app: web.Application) -> AsyncIterator[None]:
    """Sign-in: the throttle, the bounded pool of threads that check passwords, the
    server-side sessions; and the guests' quota of conversations per address."""
    settings = app[appkeys.SETTINGS]
    app[appkeys.THROTTLE] = LoginThrottle(
        app[appkeys.REDIS],
        max_failures=settings.login_max_failures,
        window_s=settings.login_window_s,
        address_max_failures=settings.login_address_max_failures,
    )
    checks = PasswordChecks(
        concurrency=settings.password_hash_concurrency,
        max_pending=PASSWORD_CHECKS_PENDING * settings.password_hash_concurrency,
    )
    app[appkeys.PASSWORDS] = checks
    app[appkeys.GUEST_QUOTA] = GuestQuota(
        app[appkeys.REDIS],
        limit=settings.guest_contacts_per_address,
        window_s=settings.guest_contacts_window_s,
    )
    app[appkeys.SESSIONS] = SessionStore(
        app[appkeys.REDIS], staff_idle_s=settings.staff_idle_timeout_s
    )
    bank_secret = settings.bank_token_secret
    app[appkeys.BANK_TOKENS] = (
        BankTokenVerifier(
            app[appkeys.REDIS],
            secret=bank_secret.get_secret_value(),
            max_age_s=settings.bank_token_max_age_s,
        )
        if bank_secret is not None
        else None
    )
    try:
        yield
    finally:
        await asyncio.to_thread(checks.close)


def _router_events_round(handler: RouterEvents, reader: EventReader) -> Callable[[], Awaitable[None]]:
    """One round of mirroring router decisions; each event is handled by one instance of the
    group (a blocking read of at most a second, then what another instance left unacknowledged)."""

    async def round_() -> None:
        events = await reader.read(block_ms=1000)
        if not events:
            events = await reader.claim_stale(min_idle_ms=30_000)
        for event in events:
            try:
                await handler.handle_router_event(event)
            except Exception:
                log.exception("router event %s (%s) failed", event.id, event.type)
            await reader.ack(event)

    return round_


def media_base_url(settings: Settings) -> str:
    """Where clients reach this very process: its own port when several workers share one."""
    if settings.media_port is None:
        return settings.public_base_url
    url = urlsplit(settings.public_base_url)
    host = f"[{url.hostname}]" if url.hostname and ":" in url.hostname else url.hostname
    return urlunsplit((url.scheme, f"{host}:{settings.media_port}", url.path, "", ""))


def media_url(public_base_url: str) -> str:
    return public_base_url.replace("https://", "wss://", 1).replace("http://", "ws://", 1) + "/ws"


async def contacts_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[appkeys.SETTINGS]
    redis = app[appkeys.REDIS]
    router = RouterStore(redis, load_policy(settings.routing_policy))
    bus = Bus(redis)
    ice = IceSettings(
        ice_servers=settings.ice_servers, host_addresses=settings.ice_host_addresses or None
    )
    media_events = MediaEvents()
    media = MediaHub(
        ice,
        relay=settings.media_relay,
        on_event=media_events,
    )
    recordings = Recordings(
        db=app[appkeys.DB],
        redis=redis,
        media=media,
        instance_id=app[appkeys.INSTANCE_ID],
        root=settings.recordings_dir,
        policy=settings.retention_policy(),
        pause_limit_s=settings.recording_pause_limit_s,
    )
    svc = ContactService(
        db=app[appkeys.DB],
        redis=redis,
        router=router,
        bus=bus,
        media=media,
        instance_id=app[appkeys.INSTANCE_ID],
        media_url=media_url(media_base_url(settings)),
        grace=Grace(customer_s=settings.customer_grace_s, advisor_s=settings.advisor_grace_s),
        recordings_dir=settings.recordings_dir,
        recordings=recordings,
        wrapup_outcomes=tuple(settings.wrapup_outcomes),
        chat_max_pending=settings.chat_max_pending,
    )
    timers = Timers(svc)
    bus.on_gap = functools.partial(redeliver_local, svc)
    app[appkeys.ROUTER], app[appkeys.MEDIA], app[appkeys.CONTACTS] = router, media, svc
    reader = EventReader(redis, group=EVENTS_GROUP, consumer=app[appkeys.INSTANCE_ID])
    loops = Loops()
    loops.start(bus.run(), "bus")
    loops.start(RouterWorker(router, interval=0.25).run(), "router-timers")
    loops.until_stopped(_router_events_round(RouterEvents(svc), reader), "router events")
    loops.every(0.5, timers.sweep_grace, "grace sweep")
    loops.every(2.0, timers.push_positions, "queue positions")
    loops.start(media_events.run(svc), "media-events")
    async with asyncio.timeout(10):
        await bus.wait_ready()
    await svc.register_instance()
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            await svc.unregister_instance()
        await loops.stop()
        await svc.chat_writer.close()
        await media.close()
        # The calls are over (their files closed): what is still open is sealed incomplete.
        await recordings.shutdown()
        await recordings.close()


async def recordings_ctx(app: web.Application) -> AsyncIterator[None]:
    """The recordings' background work: copy other instances' timeline events into this
    instance's timelines; at start, seal ``incomplete`` what no live process claims (an
    instance killed mid-contact); with ``CC_RECORDINGS_URL``, upload what is sealed (and what a
    restart finds sealed but not uploaded) to S3 in a worker thread, with retries."""
    settings = app[appkeys.SETTINGS]
    recordings = app[appkeys.CONTACTS].recordings
    storage = settings.recordings_storage()
    loops = Loops()
    loops.start(recordings.run(), "timelines")
    loops.start(_sweep(recordings), "recordings-sweep")
    uploader: Uploader | None = None
    if storage is not None and recordings.enabled:
        uploader = Uploader(
            recordings,
            storage,
            attempts=settings.recordings_upload_attempts,
            backoff_s=settings.recordings_upload_backoff_s,
            keep_local=settings.recordings_keep_local,
        )
        recordings.uploader = uploader
        loops.start(uploader.run(), "recordings-upload")
        loops.start(uploader.resume_pending(), "recordings-pending")
    try:
        yield
    finally:
        recordings.uploader = None  # seals from now on (shutdown) are uploaded at the next start
        if uploader is not None:
            uploader.close()
        await loops.stop()


async def _sweep(recordings: Recordings) -> None:
    try:
        sealed = await recordings.sweep()
    except Exception:
        log.exception("recordings: sealing unsealed recordings failed")
        return
    if sealed:
        log.warning("recordings: sealed %d unsealed recordings as incomplete", len(sealed))


async def bot_ctx(app: web.Application) -> AsyncIterator[None]:
    """Put a BotGateway (with an HTTP client session of its own) in front of the queue."""
    settings = app[appkeys.SETTINGS]
    if not settings.bot_enabled:
        log.info("bot disabled (CC_BOT_ENABLED=false): customers go straight to the queue")
        yield
        return
    async with aiohttp.ClientSession(trace_configs=[metrics.rasa_trace_config()]) as http:
        rasa = RasaClient(settings.rasa_url, session=http, timeout=TURN_TIMEOUT_S)
        probe = RasaClient(settings.rasa_url, session=http, timeout=PROBE_TIMEOUT_S)
        # Rasa may come up after us (containers): the gateway checks again at every session.
        if not await probe.healthy():
            log.warning("Rasa at %s does not answer yet; until it does, customers are told and "
                        "queued", settings.rasa_url)
        app[appkeys.BOT] = BotGateway(app[appkeys.CONTACTS], rasa, probe=probe)
        yield


