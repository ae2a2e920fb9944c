"""The compliance console's pages and JSON API (``/compliance``, ``/api/compliance/...``).

Only the compliance role; every request but the grant and the form's lists needs a grant
(``X-Compliance-Grant``; ``?grant=`` for media and downloads, which a browser fetches without
headers) and is audited by ``compliance.access``. Errors are JSON ``{"error", "message"}``:
400 bad input, 403 no or wrong grant (``reason_required``, ``grant_expired``, ``bad_grant``,
``not_in_grant``), 404, 409 (not sealed, no export possible), 416 a bad byte range.

``GET /compliance`` itself is ``views.pages``' role page, which renders ``compliance.html``.
"""

from __future__ import annotations

import functools
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from pydantic import ValidationError

from contact_center import appkeys
from contact_center.compliance import grants
from contact_center.compliance.access import ComplianceAccess, Viewer
from contact_center.compliance.fulltext import QueryError
from contact_center.compliance.search import SearchQuery
from contact_center.db.models import Role
from contact_center.errors import ClientError, Conflict, NotFound
from contact_center.identity.auth import Identity, csrf_token, require_role
from contact_center.openapi import operation
from recordings.storage import LocalStorage

GRANT_HEADER = "X-Compliance-Grant"
_CONTACT = r"{contact_id:[A-Za-z0-9_-]{1,64}}"
_MEDIA = r"{name:[A-Za-z0-9_.-]{1,128}}"
JsonHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


def api(handler: JsonHandler) -> JsonHandler:
    """Map what a compliance handler raises to a JSON error with the right status."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except grants.GrantError as error:
            return _error(403, error.code, str(error))
        except NotFound as error:
            return _error(404, "not_found", str(error))
        except Conflict as error:
            return _error(409, "conflict", str(error))
        except (ClientError, QueryError) as error:
            return _error(400, "bad_request", str(error))
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            return _error(400, "bad_field", f"{where}: {first.get('msg', 'invalid')}")

    return wrapped


def _access(request: web.Request) -> ComplianceAccess:
    return request.app[appkeys.COMPLIANCE]


def _viewer(request: web.Request, *, query_allowed: bool = False) -> Viewer:
    identity: Identity = request[appkeys.IDENTITY]
    token = request.headers.get(GRANT_HEADER)
    if token is None and query_allowed:
        token = request.query.get("grant")
    grant = grants.verify(token, request.app[appkeys.COMPLIANCE_GRANT_KEY], subject=identity.ref)
    return Viewer(ref=identity.ref, address=request.remote, grant=grant)


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise ClientError("the body must be JSON") from None
    if not isinstance(body, dict):
        raise ClientError("the body must be a JSON object")
    return body


def _contacts(body: dict[str, Any]) -> tuple[str, ...]:
    value = body.get("contacts", [])
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise ClientError("contacts: a list of contact ids")
    return tuple(value)


def _grant_reply(request: web.Request, grant: grants.Grant, status: int = 200) -> web.Response:
    token = grants.sign(grant, request.app[appkeys.COMPLIANCE_GRANT_KEY])
    return web.json_response({"grant": token, **grant.as_dict()}, status=status)


# ---------------------------------------------------------------------------- grants


@operation(
    "Open a case: a short-lived grant tied to the typed reason",
    tag="compliance",
    responses={200: "OK", 400: "Bad input", 401: "Not signed in", 403: "Not allowed"},
)
@require_role(Role.COMPLIANCE)
@api
async def create_grant(request: web.Request) -> web.Response:
    """Open a case: the reason (and, if known, its contacts) -> a signed grant."""
    body = await _body(request)
    identity: Identity = request[appkeys.IDENTITY]
    grant = grants.issue(identity.ref, str(body.get("reason") or ""), _contacts(body))
    viewer = Viewer(ref=identity.ref, address=request.remote, grant=grant)
    await _access(request).record_grant(viewer, "grant", list(grant.contacts))
    return _grant_reply(request, grant, status=201)


@operation(
    "Add contacts to the case's grant",
    tag="compliance",
    responses={200: "OK", 400: "Bad input", 401: "Not signed in", 403: "Not allowed"},
)
@require_role(Role.COMPLIANCE)
@api
async def extend_grant(request: web.Request) -> web.Response:
    """The case takes in more contacts: the same grant, re-signed."""
    viewer = _viewer(request)
    wanted = _contacts(await _body(request))
    added = [c for c in dict.fromkeys(wanted) if not viewer.grant.covers(c)]
    grant = grants.extend(viewer.grant, wanted)
    if added:
        await _access(request).record_grant(
            Viewer(viewer.ref, viewer.address, grant), "grant_extend", added
        )
    return _grant_reply(request, grant)


# ---------------------------------------------------------------------------- search


@operation(
    "Values to filter by (languages, topics, advisors...)",
    tag="compliance",
    responses={200: "OK", 400: "Bad input", 401: "Not signed in", 403: "Not allowed"},
)
@require_role(Role.COMPLIANCE)
@api
async def facets(request: web.Request) -> web.Response:
    """The search form's lists (advisors, languages, topics, intents): no contact in it."""
    return web.json_response(await _access(request).facets())


@operation(
    "Search contacts (filters and full text), paged and sorted (audited)",
    tag="compliance",
    responses={200: "OK", 400: "Bad input", 401: "Not signed in", 403: "Not allowed"},
)
@require_role(Role.COMPLIANCE)
@api
async def search(request: web.Request) -> web.Response:
    viewer = _viewer(request)
    query = SearchQuery.from_params(request.query)
    return web.json_response(await _access(request).search(viewer, query))


# ---------------------------------------------------------------------------- one contact


@operation(
    "One contact's details (audited)",
    tag="compliance",
    responses={200: "OK", 400: "Bad input", 401: "Not signed in", 403: "Not allowed"},
)
@require_role(Role.COMPLIANCE)
@api
async def contact(request: web.Request) -> web.Response:
    viewer = _viewer(request)
    return web.json_response(
        await _access(request).contact(viewer, request.match_info["contact_id"])
    )


@operation(
    "A contact's timeline as JSON (audited)",
    tag="compliance",
    responses={200: "OK", 400: "Bad input", 401: "Not signed in", 403: "Not allowed"},
)
@require_role(Role.COMPLIANCE)
@api
async def timeline(request: web.Request) -> web.Response:
    viewer = _viewer(request)
    return web.json_response(
        await _access(request).timeline(viewer, request.match_info["contact_id"])
    )


@operation(
    "A contact's manifest (audited)",
    tag="compliance",
    responses={200: "OK", 400: "Bad input", 401: "Not signed in", 403: "Not allowed"},
)
@require_role(Role.COMPLIANCE)
@api
async def manifest(request: web.Request) -> web.Response:
    viewer = _viewer(request)
    return web.json_response(
        await _access(request).manifest(viewer, request.match_info["contact_id"])
    )


@operation(
    "Verify a contact's recording now (audited)",
    tag="compliance",
    responses={200: "OK", 400: "Bad input", 401: "Not signed in", 403: "Not allowed"},
)
@require_role(Role.COMPLIANCE)
@api
async def verify(request: web.Request) -> web.Response:
    viewer = _viewer(request)
    return web.json_response(
        await _access(request).verify(viewer, request.match_info["contact_id"])
    )


@operation(
    "Set or clear the legal hold, with a reason (audited)",
    tag="compliance",
    responses={200: "OK", 400: "Bad input", 401: "Not signed in", 403: "Not allowed"},
)
@require_role(Role.COMPLIANCE)
@api
async def hold(request: web.Request) -> web.Response:
    """``{"held": true|false, "reason": "..."}``: set or lift a legal hold."""
    viewer = _viewer(request)
    body = await _body(request)
    held = body.get("held")
    if not isinstance(held, bool):
        raise ClientError("held: true to hold, false to release")
    result = await _access(request).set_hold(
        viewer, request.match_info["contact_id"], held=held, reason=str(body.get("reason") or "")
    )
    return web.json_response(result)


@operation(
    "Export a contact as a zip checkable offline (audited)",
    tag="compliance",
    responses={200: "OK", 400: "Bad input", 401: "Not signed in", 403: "Not allowed"},
)
@require_role(Role.COMPLIANCE)
@api
async def create_export(request: web.Request) -> web.Response:
    viewer = _viewer(request)
    done = await _access(request).export(viewer, request.match_info["contact_id"])
    return web.json_response(
        {
            "id": done.id,
            "sha256": done.sha256,
            "size": done.size,
            "files": done.files,
            "purged": done.purged,
            "url": f"/api/compliance/exports/{done.id}",
        },
        status=201,
    )


@operation(
    "Download an export (audited)",
    tag="compliance",
    responses={200: "OK", 400: "Bad input", 401: "Not signed in", 403: "Not allowed"},
)
@require_role(Role.COMPLIANCE)
@api
async def download_export(request: web.Request) -> web.StreamResponse:
    viewer = _viewer(request, query_allowed=True)
    export_id = request.match_info["export_id"]
    path = await _access(request).download(viewer, export_id)
    contact_id = export_id.partition(".")[0]
    return web.FileResponse(
        path,
        headers={
            "Content-Type": "application/zip",
            "Content-Disposition": f'attachment; filename="contact-{contact_id}.zip"',
            "Cache-Control": "no-store",
        },
    )


# ---------------------------------------------------------------------------- media


@operation(
    "A media file, with HTTP byte ranges (audited)",
    tag="compliance",
    responses={200: "OK", 400: "Bad input", 401: "Not signed in", 403: "Not allowed"},
)
@require_role(Role.COMPLIANCE)
@api
async def media(request: web.Request) -> web.StreamResponse:
    """One recording file with byte ranges (206, ``Accept-Ranges``; 416 for a bad range)."""
    viewer = _viewer(request, query_allowed=True)
    access = _access(request)
    read = await access.media(
        viewer,
        request.match_info["contact_id"],
        request.match_info["name"],
        request.headers.get("Range"),
    )
    headers = {
        "Accept-Ranges": "bytes",
        "Cache-Control": "no-store",
        "Content-Disposition": f'inline; filename="{read.name}"',
    }
    if read.etag:
        headers["ETag"] = read.etag
    if read.refused is not None:
        headers["Content-Range"] = f"bytes */{read.size}"
        return web.json_response(
            {"error": "range_not_satisfiable", "message": str(read.refused)},
            status=416,
            headers=headers,
        )
    response = web.StreamResponse(headers=headers)
    parts: list[tuple[int, int]] = read.spans or [(0, read.size - 1)]
    boundary = ""
    if read.spans is None:
        response.content_type = read.content_type
        response.content_length = read.size
    elif len(parts) == 1:
        start, end = parts[0]
        response.set_status(206)
        response.content_type = read.content_type
        response.headers["Content-Range"] = f"bytes {start}-{end}/{read.size}"
        response.content_length = end - start + 1
    else:
        boundary = secrets.token_hex(12)
        response.set_status(206)
        response.headers["Content-Type"] = f"multipart/byteranges; boundary={boundary}"
    await response.prepare(request)
    if request.method == "HEAD":
        return response
    try:
        for start, end in parts if read.size else []:
            if boundary:
                await response.write(
                    f"\r\n--{boundary}\r\nContent-Type: {read.content_type}\r\n"
                    f"Content-Range: bytes {start}-{end}/{read.size}\r\n\r\n".encode()
                )
            async for chunk in access.chunks(read, start, end):
                await response.write(chunk)
        if boundary:
            await response.write(f"\r\n--{boundary}--\r\n".encode())
        await response.write_eof()
    except ConnectionResetError:
        pass  # the browser let go of this range (it seeks by asking for another)
    return response


# ---------------------------------------------------------------------------- audit log


def _time(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ClientError(f"{name}: not an ISO 8601 date or time") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def _int(value: str | None, name: str, default: int, low: int, high: int) -> int:
    if value is None or value == "":
        return default
    if not re.fullmatch(r"\d{1,7}", value) or not low <= int(value) <= high:
        raise ClientError(f"{name}: a whole number from {low} to {high}")
    return int(value)


@operation(
    "The audit log, filterable",
    tag="compliance",
    responses={200: "OK", 400: "Bad input", 401: "Not signed in", 403: "Not allowed"},
)
@require_role(Role.COMPLIANCE)
@api
async def audit_log(request: web.Request) -> web.Response:
    viewer = _viewer(request)
    q = request.query
    contact_id = q.get("contact") or None
    if contact_id and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", contact_id):
        raise ClientError("contact: not a contact id")
    action = q.get("action") or None
    if action and not re.fullmatch(r"[a-z_]{1,32}", action):
        raise ClientError("action: not an action")
    result = await _access(request).audit_log(
        viewer,
        actor=(q.get("actor") or "").strip()[:80] or None,
        action=action,
        contact_id=contact_id,
        since=_time(q.get("from"), "from"),
        until=_time(q.get("to"), "to"),
        page=_int(q.get("page"), "page", 1, 1, 100_000),
        per_page=_int(q.get("per_page"), "per_page", 50, 1, 200),
    )
    return web.json_response(result)


# ---------------------------------------------------------------------------- pages


async def _page(request: web.Request, template: str, **extra: object) -> web.Response:
    context = {
        "identity": request[appkeys.IDENTITY],
        "csrf_token": await csrf_token(request),
        **extra,
    }
    return aiohttp_jinja2.render_template(template, request, context)


@operation(
    "The replay page of one contact",
    tag="compliance",
    responses={200: "OK", 400: "Bad input", 401: "Not signed in", 403: "Not allowed"},
)
@require_role(Role.COMPLIANCE)
async def replay_page(request: web.Request) -> web.Response:
    return await _page(
        request, "compliance_replay.html", contact_id=request.match_info["contact_id"]
    )


@operation(
    "The audit log page",
    tag="compliance",
    responses={200: "OK", 400: "Bad input", 401: "Not signed in", 403: "Not allowed"},
)
@require_role(Role.COMPLIANCE)
async def audit_page(request: web.Request) -> web.Response:
    return await _page(request, "compliance_audit.html")


# ---------------------------------------------------------------------------- wiring


async def compliance_ctx(app: web.Application) -> AsyncIterator[None]:
    """The audited access service, on the app's database and recordings store."""
    settings = app[appkeys.SETTINGS]
    assert settings.recordings_dir is not None
    app[appkeys.COMPLIANCE_GRANT_KEY] = grants.key_from_secret(settings.secret())
    app[appkeys.COMPLIANCE] = ComplianceAccess(
        app[appkeys.DB],
        LocalStorage(settings.recordings_dir),
        database_url=settings.database_url,
        exports_dir=settings.var_dir / "compliance-exports",
    )
    yield


#: Every compliance route: (method, path, handler); the pages first.
ROUTES: list[tuple[str, str, JsonHandler]] = [
    ("GET", f"/compliance/contacts/{_CONTACT}", replay_page),
    ("GET", "/compliance/audit", audit_page),
    ("POST", "/api/compliance/grants", create_grant),
    ("POST", "/api/compliance/grants/contacts", extend_grant),
    ("GET", "/api/compliance/facets", facets),
    ("GET", "/api/compliance/search", search),
    ("GET", f"/api/compliance/contacts/{_CONTACT}", contact),
    ("GET", f"/api/compliance/contacts/{_CONTACT}/timeline", timeline),
    ("GET", f"/api/compliance/contacts/{_CONTACT}/manifest", manifest),
    ("POST", f"/api/compliance/contacts/{_CONTACT}/verify", verify),
    ("GET", f"/api/compliance/contacts/{_CONTACT}/media/{_MEDIA}", media),
    ("POST", f"/api/compliance/contacts/{_CONTACT}/hold", hold),
    ("POST", f"/api/compliance/contacts/{_CONTACT}/exports", create_export),
    ("GET", r"/api/compliance/exports/{export_id:[A-Za-z0-9_.-]{1,100}}", download_export),
    ("GET", "/api/compliance/audit", audit_log),
]


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(compliance_ctx)
    for method, path, handler in ROUTES:
        if method == "GET":
            app.router.add_get(path, handler)  # and HEAD
        else:
            app.router.add_route(method, path, handler)
