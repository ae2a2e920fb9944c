"""The pages of each role."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp_jinja2
from aiohttp import web
from aiohttp_session import get_session

from contact_center import appkeys
from contact_center.db.models import Role
from contact_center.identity.auth import Handler, csrf_token, require_role
from contact_center.identity.bank_token import PAGE_LANGUAGE
from contact_center.openapi import Response, operation
from contact_center.views.advisor_desk import desk_config


async def page(request: web.Request, template: str, **extra: object) -> web.Response:
    """Render a role's page with what every page needs (identity, CSRF token, ICE servers)."""
    identity = request[appkeys.IDENTITY]
    context = {
        "identity": identity,
        "csrf_token": await csrf_token(request),
        "ice_servers": request.app[appkeys.SETTINGS].ice_servers,
        **extra,
    }
    return aiohttp_jinja2.render_template(template, request, context)


def _page_doc(what: str) -> Callable[[Handler], Handler]:
    return operation(
        what, tag="pages",
        responses={
            200: Response("The page", content_type="text/html"),
            302: "Not signed in: to /login?next=…",
            403: Response("Signed in with another role", content_type="text/plain"),
        },
    )


@_page_doc("The customer's start page (a guest identity is made if there is none)")
@require_role(Role.CUSTOMER, allow_guest=True)
async def customer(request: web.Request) -> web.Response:
    # A customer the bank signed in has a preferred language: the page starts in it.
    preferred = (await get_session(request)).get("lang")
    html_lang = PAGE_LANGUAGE.get(str(preferred))
    return await page(request, "customer.html", **({"html_lang": html_lang} if html_lang else {}))


@_page_doc("The advisor console")
@require_role(Role.ADVISOR)
async def advisor(request: web.Request) -> web.Response:
    return await page(request, "advisor.html", desk=desk_config(request.app))


@_page_doc("The supervisor wall")
@require_role(Role.SUPERVISOR, Role.ADMIN)
async def supervisor(request: web.Request) -> web.Response:
    return await page(request, "supervisor.html")


@_page_doc("The compliance console")
@require_role(Role.COMPLIANCE)
async def compliance(request: web.Request) -> web.Response:
    return await page(request, "compliance.html")


@_page_doc("Administration")
@require_role(Role.ADMIN)
async def admin(request: web.Request) -> web.Response:
    return await page(request, "admin.html")


ROLE_PAGES = {
    "/": customer,
    "/advisor": advisor,
    "/supervisor": supervisor,
    "/compliance": compliance,
    "/admin": admin,
}


def setup(app: web.Application) -> None:
    for path, handler in ROLE_PAGES.items():
        app.router.add_get(path, handler)
