"""The application factory: everything the server holds is built here from the settings."""

from __future__ import annotations

import hashlib
import importlib.resources
import ipaddress
import logging
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp_jinja2
import jinja2
from aiohttp import web
from aiohttp.typedefs import Middleware
from aiohttp_session import session_middleware
from aiohttp_session.cookie_storage import EncryptedCookieStorage

from contact_center import appkeys, metrics
from contact_center.config import Settings
from contact_center.identity.auth import Handler, csrf_middleware
from contact_center.identity.sessions import SESSION_MAX_AGE_S
from contact_center.server import error_pages
from contact_center.server.contexts import (
    bot_ctx,
    contacts_ctx,
    database_ctx,
    rasa_ctx,
    recordings_ctx,
    redis_ctx,
    throttle_ctx,
    valkey_ctx,
)
from contact_center.server.logs import request_id_var
from contact_center.server.reliability import reliability_ctx
from contact_center.server.voice import voice_ctx
from contact_center.views import (
    admin,
    advisor_desk,
    api,
    bank_sign_in,
    compliance,
    docs,
    health,
    pages,
    password,
    supervisor,
    widget,
)
from contact_center.views import auth as auth_views
from contact_center.views import metrics as metrics_view
from contact_center.ws import endpoint

log = logging.getLogger(__name__)
access_log = logging.getLogger("contact_center.access")

#: Templates and static files ship inside the ``web`` package (package data of the wheel).
WEB_DIR = Path(str(importlib.resources.files("web")))
SESSION_COOKIE = "cc_session"


def _networks(values: list[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(value, strict=False) for value in values]


def _within(address: str | None, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(trusted_proxies: list[str]) -> Middleware:
    """``request.remote`` becomes the client's address when a trusted proxy forwarded it.

    X-Forwarded-For is read from the right, skipping our own proxies: the first address that is
    not one of them is the client (anything left of it the client could have written itself).
    Without trusted proxies the header is ignored, so it cannot dodge the limits per address.
    """
    networks = _networks(trusted_proxies)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if networks and _within(request.remote, networks):
            hops = [
                hop.strip()
                for header in request.headers.getall("X-Forwarded-For", [])
                for hop in header.split(",")
            ]
            client = request.remote
            for hop in reversed(hops):
                try:
                    ipaddress.ip_address(hop)
                except ValueError:
                    break
                client = hop
                if not _within(hop, networks):
                    break
            if client is not None and client != request.remote:
                request = request.clone(remote=client)
        return await handler(request)

    return middleware


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
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        seconds = time.perf_counter() - started
        metrics.HTTP_REQUESTS.labels(request.method, route, str(status)).inc()
        metrics.HTTP_SECONDS.labels(route).observe(seconds)
        if request.path not in ("/healthz", "/readyz"):
            access_log.info(
                "request",
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": status,
                    "ms": round(seconds * 1000, 2),
                    "remote": request.remote,
                },
            )
        request_id_var.reset(token)


#: The widget's loader script (README, *The widget*).
WIDGET_LOADER = "/static/widget.js"


def content_security_policy(settings: Settings, *, frame_ancestors: str = "'none'") -> str:
    """Only our own scripts, styles and frames; sockets to our host on any port (several
    workers each negotiate media on a port of their own); media from the camera or blobs.
    Nobody may frame a page but those given (the widget: the bank's configured sites)."""
    url = urlsplit(settings.public_base_url)
    scheme = "wss" if url.scheme == "https" else "ws"
    host = f"[{url.hostname}]" if url.hostname and ":" in url.hostname else url.hostname
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data: blob:",
            "media-src 'self' blob: mediastream:",
            f"connect-src 'self' {scheme}://{host}:*",
            "font-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            f"frame-ancestors {frame_ancestors}",
        ]
    )


def security_headers(settings: Settings) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """An ``on_response_prepare`` hook: every response (errors, static files and WebSocket
    upgrades included) gets the same protective headers; a handler's own values win."""
    headers = {
        "Content-Security-Policy": content_security_policy(settings),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
        "Permissions-Policy": "camera=(self), microphone=(self), display-capture=(), "
        "geolocation=(), payment=(), usb=(), interest-cohort=()",
    }
    if settings.cookie_secure:
        headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    framed = {
        **{k: v for k, v in headers.items() if k != "X-Frame-Options"},  # CSP says who may
        "Content-Security-Policy": content_security_policy(
            settings, frame_ancestors=" ".join(["'self'", *settings.widget_origins])
        ),
    }
    # The widget's loader is a script of the bank's pages: another origin must be able to load it.
    loader = {**headers, "Cross-Origin-Resource-Policy": "cross-origin"}

    async def add(request: web.Request, response: web.StreamResponse) -> None:
        chosen = headers
        if request.get(appkeys.FRAMEABLE):
            chosen = framed
        elif request.path == WIDGET_LOADER:
            chosen = loader
        for name, value in chosen.items():
            response.headers.setdefault(name, value)
        # No product or version for a scanner to match against advisories.
        response.headers["Server"] = "harbour"
        # Pages and JSON carry personal data: never kept by a browser or a shared cache.
        kind = response.content_type if isinstance(response, web.Response) else ""
        if kind in ("text/html", "application/json", "text/plain"):
            response.headers.setdefault("Cache-Control", "no-store")

    return add


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
        middlewares=[
            client_address(settings.trusted_proxies),
            request_context,
            session_middleware(_cookie_storage(settings)),
            error_pages.error_pages,  # inside the session: the page knows who is signed in
            csrf_middleware,
        ],
    )
    app[appkeys.SETTINGS] = settings
    app.on_response_prepare.append(security_headers(settings))
    app.on_response_prepare.append(error_pages.static_types)
    app[appkeys.INSTANCE_ID] = f"{socket.gethostname()}:{settings.port}:{uuid.uuid4().hex[:8]}"
    # Rasa first: starting it blocks, which harms nothing before the rest runs; the bot last,
    # as it needs the session service.
    app.cleanup_ctx.extend(
        [
            rasa_ctx,
            database_ctx,
            valkey_ctx,
            redis_ctx,
            throttle_ctx,
            contacts_ctx,
            recordings_ctx,
            reliability_ctx,
            bot_ctx,
            voice_ctx,  # the voice bridge after the bot: it needs the gateway
        ]
    )

    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(WEB_DIR / "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
    )
    app.router.add_static("/static", WEB_DIR / "static", name="static")
    health.setup(app)
    auth_views.setup(app)
    password.setup(app)
    bank_sign_in.setup(app)
    pages.setup(app)
    widget.setup(app)
    endpoint.setup(app)
    api.setup(app)
    admin.setup(app)
    supervisor.setup(app)
    metrics_view.setup(app)
    docs.setup(app)
    compliance.setup(app)
    advisor_desk.setup(app)
    return app
