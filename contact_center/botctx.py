"""Cleanup contexts of the bot: the gateway at ``app[signalling.BOT]`` and, for ``make run``,
the Rasa servers themselves.

``bot_ctx`` goes after ``sessions_ctx`` (it needs ``app[SESSIONS]``). ``rasa_ctx`` goes first:
starting Rasa blocks the event loop for the 15-30 s it takes (``RasaServices.start`` waits
synchronously, and must run on the main thread so that the servers die with this process), which
is harmless only before anything else runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from chatbot import env
from chatbot.client import RasaClient
from chatbot.services import RasaServices, ServiceError
from contact_center import keys, signalling
from contact_center.bot import BotGateway

log = logging.getLogger(__name__)

#: A bot turn (NLU, policies, custom action) takes 50-300 ms; a slow one should not hold the
#: customer's chat for long before they are queued instead.
TURN_TIMEOUT_S = 10.0
#: Health check when a session starts: a Rasa that does not answer this fast is treated as down.
PROBE_TIMEOUT_S = 2.0
DEFAULT_RASA_PORT = 5005
DEFAULT_ACTIONS_PORT = 5055
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
RASA_SERVICES: web.AppKey[RasaServices | None] = web.AppKey("rasa_services")


async def bot_ctx(app: web.Application) -> AsyncIterator[None]:
    """Put a BotGateway (with an HTTP client session of its own) in front of the queue."""
    settings = app[keys.SETTINGS]
    if not settings.bot_enabled:
        log.info("bot disabled (CC_BOT_ENABLED=false): customers go straight to the queue")
        yield
        return
    async with aiohttp.ClientSession() as http:
        rasa = RasaClient(settings.rasa_url, session=http, timeout=TURN_TIMEOUT_S)
        probe = RasaClient(settings.rasa_url, session=http, timeout=PROBE_TIMEOUT_S)
        # Rasa may come up after us (containers): the gateway checks again at every session.
        if not await probe.healthy():
            log.warning("Rasa at %s does not answer yet; until it does, customers are told and "
                        "queued", settings.rasa_url)
        app[signalling.BOT] = BotGateway(app[signalling.SESSIONS], rasa, probe=probe)
        yield


async def rasa_ctx(app: web.Application) -> AsyncIterator[None]:
    """With ``rasa_manage``, run Rasa and its action server for as long as the app runs."""
    settings = app[keys.SETTINGS]
    app[RASA_SERVICES] = None
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
    app[RASA_SERVICES] = services
    try:
        yield
    finally:
        if services is not None:
            services.stop()
