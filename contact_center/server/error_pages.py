"""Error pages in the app's look for people (a browser asking for a page), unchanged answers for
programs (``/api``, ``/ws``, ``/metrics``, anything that does not ask for HTML); the database or
Redis being down is a 503 for both (``{"error": "unavailable"}`` for a program); and the content
types of the static files, the same on every machine."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path, PurePosixPath
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from contact_center.errors import ErrorCode, service_down
from contact_center.identity.auth import STAFF_HOME, Handler, csrf_token, current_identity
from contact_center.server.logs import request_id_var

log = logging.getLogger(__name__)

#: seconds a client is asked to wait when the database or Redis is down
RETRY_AFTER_S = 5

#: Paths whose clients are programs: their errors keep their own (JSON or text) bodies.
PROGRAM_PREFIXES = ("/api/", "/ws", "/metrics", "/healthz", "/readyz")

#: What each kind of static file is, whatever the machine's /etc/mime.types says (a JavaScript
#: module served as anything else is refused by the browser, with nosniff on every response).
STATIC_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".wasm": "application/wasm",
    ".map": "application/json",
    ".html": "text/html",
    ".txt": "text/plain",
}
_TEXT_TYPES = {"text/javascript", "text/css", "application/json", "application/manifest+json",
               "image/svg+xml", "text/html", "text/plain"}

#: The statuses with words of their own; any other 4xx or 5xx gets the general ones.
KNOWN = frozenset({401, 403, 404, 405, 413, 429, 500, 503})


async def static_types(request: web.Request, response: web.StreamResponse) -> None:
    """An ``on_response_prepare`` hook: our static files get their type by extension (aiohttp
    guesses from the machine's tables), text ones marked UTF-8."""
    if not (request.path.startswith("/static/") and isinstance(response, web.FileResponse)):
        return
    if response.status not in (200, 206, 304):
        return
    kind = STATIC_TYPES.get(PurePosixPath(request.path).suffix.lower())
    if kind is None:
        return  # aiohttp's guess, or application/octet-stream (nosniff keeps it inert)
    response.content_type = kind
    if kind in _TEXT_TYPES:
        response.charset = "utf-8"


def wants_page(request: web.Request) -> bool:
    """A person's browser asking for a page (not a program, not a script or a fetch)."""
    if request.path.startswith(PROGRAM_PREFIXES):
        return False
    return "text/html" in request.headers.get("Accept", "")


async def _static_file_exists(request: web.Request) -> bool:
    resource = request.match_info.route.resource
    directory = resource.get_info().get("directory") if resource is not None else None
    filename = request.match_info.get("filename")
    if not isinstance(directory, Path) or not filename:
        return True  # not a static route: the response is the handler's business
    return await asyncio.to_thread((directory / filename).is_file)


def _kind(status: int) -> str:
    if status in KNOWN:
        return str(status)
    return "5xx" if status >= 500 else "4xx"


def _detail(exc: web.HTTPException) -> str | None:
    """The handler's own words, unless they are aiohttp's stock "404: Not Found"."""
    text = (exc.text or "").strip()
    if not text or text == f"{exc.status}: {exc.reason}":
        return None
    return text


async def _render(
    request: web.Request, status: int, *, detail: str | None, headers: dict[str, str]
) -> web.Response:
    try:
        identity = await current_identity(request)
    except Exception:  # the error may be that Redis is down: the page still shows
        log.warning("error page without identity", exc_info=True)
        identity = None
    context: dict[str, Any] = {
        "identity": identity,
        "csrf_token": await csrf_token(request),
        "status": status,
        "kind": _kind(status),
        "detail": detail,
        "home": STAFF_HOME.get(identity.role, "/") if identity is not None else "/",
        "request_id": request_id_var.get(),
        "signed_in": identity is not None and not identity.guest,
    }
    response = aiohttp_jinja2.render_template("error.html", request, context, status=status)
    for name, value in headers.items():
        if name.lower() not in ("content-type", "content-length"):
            response.headers[name] = value
    return response


@web.middleware
async def error_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Raised HTTP errors (404, 403...) and unexpected exceptions become a styled page for a
    browser; everyone else gets what they got before (JSON stays JSON)."""
    try:
        response = await handler(request)
        if isinstance(response, web.FileResponse) and not await _static_file_exists(request):
            # aiohttp would answer an empty 404 typed as the file would have been
            raise web.HTTPNotFound()
        return response
    except web.HTTPException as exc:
        if exc.status < 400 or not wants_page(request):
            raise
        return await _render(request, exc.status, detail=_detail(exc), headers=dict(exc.headers))
    except Exception as exc:
        down = service_down(exc)
        if down is not None:
            log.warning("%s %s: %s (%r)", request.method, request.path, down, exc)
            headers = {"Retry-After": str(RETRY_AFTER_S)}
            if wants_page(request):
                return await _render(request, 503, detail=None, headers=headers)
            return web.json_response(
                {"error": ErrorCode.UNAVAILABLE.value, "message": down}, status=503, headers=headers
            )
        if not wants_page(request):
            raise
        log.exception("unhandled error on %s %s", request.method, request.path)
        # Nothing of the exception is shown: the request id finds it in the logs.
        return await _render(request, 500, detail=None, headers={})
