"""The application factory: everything the server holds is built here from the settings."""

from __future__ import annotations

import hashlib
import importlib.resources
import logging
import socket
import time
import uuid
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web
from aiohttp_session import session_middleware
from aiohttp_session.cookie_storage import EncryptedCookieStorage

from contact_center import appkeys
from contact_center.config import Settings
from contact_center.identity.auth import Handler, csrf_middleware
from contact_center.server.contexts import (
    bot_ctx,
    contacts_ctx,
    database_ctx,
    rasa_ctx,
    redis_ctx,
    throttle_ctx,
    valkey_ctx,
)
from contact_center.server.logs import request_id_var
from contact_center.views import api, compliance, health, pages
from contact_center.views import auth as auth_views
from contact_center.ws import endpoint

log = logging.getLogger(__name__)
access_log = logging.getLogger("contact_center.access")

#: Templates and static files ship inside the ``web`` package (package data of the wheel).
WEB_DIR = Path(str(importlib.resources.files("web")))
SESSION_COOKIE = "cc_session"
SESSION_MAX_AGE_S = 12 * 3600


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give each request an id (kept from X-Request-Id when sane) and log it once, done."""
    given = request.headers.get("X-Request-Id", "")
    request_id = given if 0 < len(given) <= 64 and given.isascii() else uuid.uuid4().hex
    token = request_id_var.set(request_id)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-Id"] = request_id
        return response
    except web.HTTPException as exc:
        status = exc.status
        exc.headers["X-Request-Id"] = request_id
        raise
    finally:
        if request.path not in ("/healthz", "/readyz"):
            access_log.info(
                "request",
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": status,
                    "ms": round((time.perf_counter() - started) * 1000, 2),
                    "remote": request.remote,
                },
            )
        request_id_var.reset(token)


def _cookie_storage(settings: Settings) -> EncryptedCookieStorage:
    # A key of its own, derived from the secret: raw 32 bytes, which the storage base64-encodes.
    key = hashlib.sha256(b"cookie:" + settings.secret().encode()).digest()
    return EncryptedCookieStorage(
        key,
        cookie_name=SESSION_COOKIE,
        httponly=True,
        samesite="Lax",
        secure=settings.cookie_secure,
        max_age=SESSION_MAX_AGE_S,
    )


def create_app(settings: Settings) -> web.Application:
    """Build the aiohttp application; resources open on startup and close on cleanup."""
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[request_context, session_middleware(_cookie_storage(settings)), csrf_middleware],
    )
    app[appkeys.SETTINGS] = settings
    app[appkeys.INSTANCE_ID] = f"{socket.gethostname()}:{settings.port}:{uuid.uuid4().hex[:8]}"
    # Rasa first: starting it blocks, which harms nothing before the rest runs; the bot last,
    # as it needs the session service.
    app.cleanup_ctx.extend(
        [rasa_ctx, database_ctx, valkey_ctx, redis_ctx, throttle_ctx, contacts_ctx, bot_ctx]
    )

    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(WEB_DIR / "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
    )
    app.router.add_static("/static", WEB_DIR / "static", name="static")
    health.setup(app)
    auth_views.setup(app)
    pages.setup(app)
    endpoint.setup(app)
    api.setup(app)
    compliance.setup(app)
    return app
