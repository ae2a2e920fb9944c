"""The OpenAPI document: valid, every route in it, written from the handlers' own models, in
step with docs/openapi.json, and readable at /api/docs."""

from __future__ import annotations

import json

import pytest

from contact_center.openapi import documented_routes
from contact_center.server import api_doc
from contact_center.server.app import create_app
from contact_center.views.api import SupervisorSnapshot
from contact_center.views.auth import LoginForm
from contact_center.views.health import Readiness
from contact_center.ws.tokens import WsToken


@pytest.fixture
def app(settings):  # type: ignore[no-untyped-def]
    return create_app(settings)


def test_every_route_is_documented(app):
    undocumented = [(m, p) for m, p, op in documented_routes(app) if op is None]
    assert undocumented == [], "document these with @operation (contact_center.openapi)"


def test_the_document_is_valid_openapi():
    from openapi_spec_validator import validate

    validate(api_doc.json.loads(api_doc.written()))


async def test_the_document_matches_the_routes_and_the_models(client):
    document = await (await client.get("/api/openapi.json")).json()
    served = {(m.lower(), p) for m, p, _ in documented_routes(client.app)}
    listed = {(m, p) for p, item in document["paths"].items() for m in item}
    assert listed == served
    schemas = document["components"]["schemas"]
    # the very models the handlers validate their input and write their output with
    for model in (LoginForm, WsToken, Readiness, SupervisorSnapshot):
        assert any(name.startswith(model.__name__) for name in schemas), model.__name__
    login = document["paths"]["/login"]["post"]
    form = login["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert form["$ref"].endswith("LoginForm")
    assert set(login["responses"]) == {"303", "400", "401", "403", "429", "503"}
    token = document["paths"]["/api/ws-token"]["post"]
    assert token["security"] == [{"session": []}]
    assert "For: customer, advisor, supervisor, compliance, admin." in token["description"]
    assert document["paths"]["/metrics"]["get"]["security"] == [{"metricsToken": []}]


def test_docs_openapi_json_is_up_to_date():
    assert api_doc.DOC.read_text() == api_doc.written(), (
        "docs/openapi.json is stale: run python -m contact_center.server.api_doc"
    )


async def test_the_page_lists_every_operation(client):
    page = await client.get("/api/docs")
    assert page.status == 200
    html = await page.text()
    document = json.loads(api_doc.written())
    for path, item in document["paths"].items():
        for method in item:
            assert f"{method.upper()} {path}" in html
    assert "<script" not in html  # nothing for the CSP to refuse


async def test_a_snapshot_is_what_the_document_says(client, settings):
    from contact_center.db.models import Role
    from tests.helpers import login, make_user

    supervisor = await make_user(settings, Role.SUPERVISOR)
    await login(client, supervisor.username)
    response = await client.get("/api/supervisor/snapshot")
    assert response.status == 200
    SupervisorSnapshot.model_validate(await response.json())
