"""Error pages: styled HTML for a browser asking for a page, the old answers for programs; the
static files' content types. On the real app (real database and Redis)."""

from __future__ import annotations

import pytest
from aiohttp import web

from contact_center.server.app import WEB_DIR, create_app
from contact_center.server.error_pages import STATIC_TYPES
from tests.helpers import csrf_from

HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


async def test_a_missing_page_is_a_page_in_the_app_look(client):
    response = await client.get("/no/such/page", headers=HTML)
    assert response.status == 404
    assert response.content_type == "text/html"
    body = await response.text()
    assert "Harbour Bank" in body and 'href="/static/app.css"' in body  # base.html
    assert "Page not found" in body and 'data-status="404"' in body
    assert "404: Not Found" not in body  # aiohttp's stock words are not shown
    assert response.headers["X-Request-Id"]
    assert response.headers["Content-Security-Policy"]  # the security headers still apply


@pytest.mark.parametrize("path", ["/no/such/page", "/static/nope.js", "/api/no/such"])
async def test_programs_get_what_they_got_before(client, path):
    response = await client.get(path, headers={"Accept": "*/*"})
    assert response.status == 404
    assert response.content_type == "text/plain"
    assert await response.text() == "404: Not Found"


async def test_api_and_ws_errors_are_never_html(client):
    response = await client.get("/api/supervisor/snapshot", headers=HTML)
    assert response.status == 401 and response.content_type == "text/plain"
    response = await client.get("/api/no/such", headers=HTML)
    assert response.status == 404 and response.content_type != "text/html"
    response = await client.get("/ws", headers=HTML)  # not an upgrade
    assert response.content_type != "text/html"


async def test_json_errors_stay_json(client):
    token = csrf_from(await (await client.get("/login")).text())
    response = await client.post(
        "/api/ws-token", headers={**HTML, "X-CSRF-Token": token}, data=b"{"
    )
    if response.content_type == "application/json":
        await response.json()
    assert response.content_type != "text/html"


async def test_a_page_for_another_role_is_a_403_page_with_the_reason(client):
    await client.get("/")  # a guest customer
    response = await client.get("/advisor", headers=HTML)
    assert response.status == 403 and response.content_type == "text/html"
    body = await response.text()
    assert "You cannot open this page" in body
    assert "This page is for advisor accounts" in body  # the handler's own words
    assert 'href="/login"' in body


async def test_a_form_without_its_csrf_token_is_a_403_page(client):
    await client.get("/login")
    response = await client.post(
        "/login", data={"username": "x", "password": "y"}, headers=HTML, allow_redirects=False
    )
    assert response.status == 403 and response.content_type == "text/html"
    assert "CSRF token missing or wrong" in await response.text()


async def test_an_unexpected_error_is_a_500_page_that_shows_nothing_of_it(
    aiohttp_client, settings, redis_client
):
    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("secret internals: db password is hunter2")

    app = create_app(settings)
    app.router.add_get("/boom", boom)
    client = await aiohttp_client(app)
    response = await client.get("/boom", headers=HTML)
    assert response.status == 500 and response.content_type == "text/html"
    body = await response.text()
    assert "Something went wrong on our side" in body
    assert "hunter2" not in body and "RuntimeError" not in body and "Traceback" not in body
    assert response.headers["X-Request-Id"] in body  # quoted for support
    plain = await client.get("/boom", headers={"Accept": "application/json"})
    assert plain.status == 500 and "hunter2" not in await plain.text()


async def test_static_files_have_their_content_types(client):
    files = [p for p in (WEB_DIR / "static").rglob("*") if p.is_file()]
    assert files
    for path in files:
        url = "/static/" + path.relative_to(WEB_DIR / "static").as_posix()
        response = await client.get(url)
        assert response.status == 200, url
        expected = STATIC_TYPES.get(path.suffix, "application/octet-stream")
        assert response.content_type == expected, url
        if expected in ("text/javascript", "text/css"):
            assert response.charset == "utf-8", url
