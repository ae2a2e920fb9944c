"""Every response carries the headers a bank's security review looks for (issue 13)."""

from __future__ import annotations

import pytest

from contact_center.server.app import create_app

PATHS = [("/login", 200), ("/", 200), ("/static/app.css", 200), ("/healthz", 200),
         ("/nowhere", 404), ("/advisor", 302)]


@pytest.mark.parametrize(("path", "status"), PATHS)
async def test_every_response_has_the_security_headers(client, path, status):
    response = await client.get(path, allow_redirects=False)
    assert response.status == status
    headers = response.headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert "camera=(self)" in headers["Permissions-Policy"]
    assert "geolocation=()" in headers["Permissions-Policy"]
    csp = dict(
        (part.split(" ", 1) + [""])[:2] for part in (p.strip() for p in headers["Content-Security-Policy"].split(";")) if part
    )
    assert csp["default-src"] == "'self'"
    assert csp["script-src"] == "'self'" and "unsafe" not in headers["Content-Security-Policy"]
    assert csp["frame-ancestors"] == "'none'" and csp["object-src"] == "'none'"
    assert csp["form-action"] == "'self'" and csp["base-uri"] == "'none'"
    assert "ws://127.0.0.1:*" in csp["connect-src"]
    assert "aiohttp" not in headers.get("Server", "") and "Python" not in headers.get("Server", "")
    # plain http here: no HSTS
    assert "Strict-Transport-Security" not in headers


@pytest.mark.parametrize("path", ["/login", "/", "/healthz"])
async def test_pages_and_json_are_not_cached(client, path):
    response = await client.get(path)
    assert response.headers["Cache-Control"] == "no-store"


async def test_static_files_may_be_cached(client):
    response = await client.get("/static/app.css")
    assert response.headers.get("Cache-Control") != "no-store"


async def test_https_adds_hsts_and_secure_websockets(aiohttp_client, settings, redis_client):
    secure = settings.model_copy(update={"public_base_url": "https://cc.harbour.example"})
    client = await aiohttp_client(create_app(secure))
    response = await client.get("/login")
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert "wss://cc.harbour.example:*" in response.headers["Content-Security-Policy"]
    assert "ws://" not in response.headers["Content-Security-Policy"]
