"""``GET /api/openapi.json`` and ``GET /api/docs``: the HTTP API's document and a page to
read it (server-rendered, no script: the page obeys the same CSP as the others)."""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from contact_center.identity.auth import csrf_token, current_identity
from contact_center.openapi import Response, openapi, operation

TITLE = "Harbour contact center"


def document(app: web.Application) -> dict[str, Any]:
    try:
        version = package_version("contact-center")
    except PackageNotFoundError:  # pragma: no cover - running from a plain checkout
        version = "0"
    return openapi(app, title=TITLE, version=version)


@operation(
    "This document (OpenAPI 3.1)", tag="documentation",
    responses={200: "The OpenAPI document"},
)
async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(document(request.app))


@operation(
    "This document as a page", tag="documentation",
    responses={200: Response("The page", content_type="text/html")},
)
async def docs_page(request: web.Request) -> web.Response:
    doc = document(request.app)
    operations = [
        {
            "method": method.upper(),
            "path": path,
            **op,
            "request": json.dumps(op.get("requestBody", {}).get("content", {}), indent=2),
            "answers": {
                status: json.dumps(answer.get("content", {}), indent=2)
                for status, answer in op["responses"].items()
            },
        }
        for path, item in doc["paths"].items()
        for method, op in item.items()
    ]
    context = {
        "identity": await current_identity(request),
        "csrf_token": await csrf_token(request),
        "operations": operations,
        "schemas": {
            name: json.dumps(schema, indent=2)
            for name, schema in doc["components"]["schemas"].items()
        },
    }
    return aiohttp_jinja2.render_template("api_docs.html", request, context)


def setup(app: web.Application) -> None:
    app.router.add_get("/api/openapi.json", openapi_json)
    app.router.add_get("/api/docs", docs_page)
