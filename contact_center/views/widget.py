"""``GET /widget``: the customer page inside the widget's iframe on a bank's page.

Only this page may be framed, and only by the sites of ``CC_WIDGET_ORIGINS`` (its CSP's
``frame-ancestors``; every other page keeps ``'none'`` and ``X-Frame-Options: DENY``). The page
authenticates its WebSocket without a cookie (``static/embedded.js``): the loader is
``static/widget.js`` (README, *The widget*).
"""

from __future__ import annotations

import json

from aiohttp import web

from contact_center import appkeys
from contact_center.db.models import Role
from contact_center.identity.auth import require_role
from contact_center.openapi import Response, operation
from contact_center.views.pages import page


@operation(
    "The customer page for the widget's iframe", tag="pages",
    description="May be framed by CC_WIDGET_ORIGINS only. `?origin=` names the embedding page's "
    "origin (one of them), the only one it exchanges postMessage with.",
    responses={200: Response("The page", content_type="text/html")},
)
@require_role(Role.CUSTOMER, allow_guest=True)
async def widget(request: web.Request) -> web.Response:
    request[appkeys.FRAMEABLE] = True
    origins = request.app[appkeys.SETTINGS].widget_origins
    return await page(request, "widget.html", parent_origins=json.dumps(origins))


def setup(app: web.Application) -> None:
    app.router.add_get("/widget", widget)
