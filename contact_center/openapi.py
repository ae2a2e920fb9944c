"""OpenAPI for the HTTP API, written from the pydantic models the handlers validate with.

A handler says what it takes and returns with ``@operation(...)``, naming the models it uses
itself (``Model.model_validate(...)`` on the way in, ``respond(Model(...))`` on the way out), so
the document cannot describe anything the code does not do. ``views.docs`` serves it at
``/api/openapi.json`` and as a page at ``/api/docs``; a test keeps every route documented.

A small generator rather than aiohttp-pydantic: that library makes each handler a class-based
view with its own conventions for reading a request, while ours are functions behind
``require_role``; what it would add here, ~150 lines do (pydantic writes the schemas). It sits
beside ``protocol`` (the WebSocket's messages) as the HTTP side's definitions, so that views
and ws, which may not import each other, both use it.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

OPENAPI_VERSION = "3.1.0"
Body = Literal["json", "form"]


@dataclass(frozen=True)
class Response:
    description: str
    model: type[BaseModel] | None = None
    content_type: str = "application/json"


@dataclass(frozen=True)
class Operation:
    """What one route takes and gives, and who may call it."""

    summary: str
    tag: str
    responses: dict[int, Response]
    description: str = ""
    body: type[BaseModel] | None = None
    body_as: Body = "json"
    query: type[BaseModel] | None = None
    security: tuple[str, ...] = ()
    roles: tuple[str, ...] = field(default=())


def operation(
    summary: str,
    *,
    tag: str,
    responses: dict[int, Response | str],
    description: str = "",
    body: type[BaseModel] | None = None,
    body_as: Body = "json",
    query: type[BaseModel] | None = None,
    security: tuple[str, ...] = (),
) -> Callable[[Handler], Handler]:
    """Document a handler (put it above ``require_role``, whose roles it then reads)."""

    def decorate(handler: Handler) -> Handler:
        roles = tuple(r.value for r in getattr(handler, "required_roles", ()))
        handler.openapi = Operation(  # type: ignore[attr-defined]
            summary=summary,
            tag=tag,
            description=description,
            body=body,
            body_as=body_as,
            query=query,
            security=security or (("session",) if roles else ()),
            roles=roles,
            responses={
                status: r if isinstance(r, Response) else Response(r)
                for status, r in responses.items()
            },
        )
        return handler

    return decorate


def respond(model: BaseModel, *, status: int = 200) -> web.Response:
    """A JSON response written from ``model`` (the one the document names)."""
    return web.json_response(model.model_dump(mode="json"), status=status)


def documented_routes(app: web.Application) -> list[tuple[str, str, Operation | None]]:
    """(method, path, its operation or None) of every route but HEAD and the static files."""
    found = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if route.method == "HEAD" or path is None:
            continue
        found.append((route.method, str(path), getattr(route.handler, "openapi", None)))
    return found


Mode = Literal["validation", "serialization"]


def _schemas(
    operations: list[Operation],
) -> tuple[dict[tuple[type[BaseModel], Mode], Any], dict[str, Any]]:
    """The schema (a $ref) of each model as read (validation) or written (serialization)."""
    models: dict[tuple[type[BaseModel], Mode], None] = {}
    for op in operations:
        pairs: list[tuple[type[BaseModel] | None, Mode]] = [
            (op.body, "validation"), (op.query, "validation")
        ]
        pairs += [(r.model, "serialization") for r in op.responses.values()]
        for model, mode in pairs:
            if model is not None:
                models[(model, mode)] = None
    if not models:
        return {}, {}
    keyed, defs = models_json_schema(list(models), ref_template="#/components/schemas/{model}")
    return {key: schema for key, schema in keyed.items()}, defs.get("$defs", {})  # type: ignore[misc]


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": prop}
        for name, prop in schema.get("properties", {}).items()
    ]


def openapi(app: web.Application, *, title: str, version: str) -> dict[str, Any]:
    """The OpenAPI document of every documented route of ``app``."""
    routes = [(m, p, op) for m, p, op in documented_routes(app) if op is not None]
    refs, components = _schemas([op for _, _, op in routes])
    paths: dict[str, dict[str, Any]] = {}
    for method, path, op in routes:
        assert op is not None
        item: dict[str, Any] = {
            "summary": op.summary,
            "tags": [op.tag],
            "operationId": f"{method.lower()}_{path.strip('/').replace('/', '_') or 'root'}",
            "responses": {},
        }
        description = op.description
        if op.roles:
            description = f"{description}\n\nFor: {', '.join(op.roles)}.".strip()
        if description:
            item["description"] = description
        if op.security:
            item["security"] = [{name: []} for name in op.security]
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"\{(\w+)\}", path)
        ]
        if op.query is not None:
            parameters += _query_parameters(op.query)
        if parameters:
            item["parameters"] = parameters
        if op.body is not None:
            media = (
                "application/json" if op.body_as == "json" else "application/x-www-form-urlencoded"
            )
            schema = refs[(op.body, "validation")]
            item["requestBody"] = {"required": True, "content": {media: {"schema": schema}}}
        for status, response in sorted(op.responses.items()):
            answer: dict[str, Any] = {"description": response.description}
            if response.model is not None:
                schema = refs[(response.model, "serialization")]
                answer["content"] = {response.content_type: {"schema": schema}}
            elif response.content_type != "application/json":
                answer["content"] = {response.content_type: {"schema": {"type": "string"}}}
            item["responses"][str(status)] = answer
        paths.setdefault(path, {})[method.lower()] = item
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": version},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": components,
            "securitySchemes": {
                "session": {
                    "type": "apiKey", "in": "cookie", "name": "cc_session",
                    "description": "The cookie session of /login (or of / for a guest). "
                    "Every POST also needs the CSRF token: the X-CSRF-Token header or a "
                    "csrf_token form field (it is on every page, in <meta name=csrf-token>).",
                },
                "metricsToken": {
                    "type": "http", "scheme": "bearer",
                    "description": "CC_METRICS_TOKEN (without one, loopback only).",
                },
            },
        },
    }
