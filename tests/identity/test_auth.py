"""Sign-in, sign-out, throttling, CSRF and role guards through the real app."""

from __future__ import annotations

import pytest
from sqlmodel import select

from contact_center import appkeys
from contact_center.db.engine import transaction
from contact_center.db.models import AuditLog, Role
from contact_center.server.app import create_app
from contact_center.views.pages import ROLE_PAGES
from tests.helpers import csrf_from, login, make_user
from tests.redis_servers import ON_CLUSTER_TOO

ROLE_OF_PAGE = {
    "/": {Role.CUSTOMER},
    "/advisor": {Role.ADVISOR},
    "/supervisor": {Role.SUPERVISOR, Role.ADMIN},
    "/compliance": {Role.COMPLIANCE},
    "/admin": {Role.ADMIN},
}


async def test_login_success_lands_on_role_home_and_sets_a_safe_cookie(client, settings):
    user = await make_user(settings, Role.ADVISOR, languages=["en"])
    response = await login(client, user.username)
    assert response.status == 303
    assert response.headers["Location"] == "/advisor"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    page = await client.get("/advisor")
    assert page.status == 200
    assert "Advisor console" in await page.text()


async def test_wrong_password_and_unknown_user_get_the_same_answer(client, settings):
    user = await make_user(settings, Role.ADVISOR)
    wrong = await login(client, user.username, "not the password")
    unknown = await login(client, "nobody-here", "whatever password")
    assert wrong.status == unknown.status == 401
    assert "Wrong username or password." in await wrong.text()
    assert "Wrong username or password." in await unknown.text()
    assert (await client.get("/advisor", allow_redirects=False)).status == 302


@ON_CLUSTER_TOO
async def test_throttling_after_five_failures_even_with_the_right_password(client, settings):
    user = await make_user(settings, Role.SUPERVISOR)
    for _ in range(5):
        assert (await login(client, user.username, "bad password!")).status == 401
    blocked = await login(client, user.username)
    assert blocked.status == 429
    assert "Too many failed sign-ins" in await blocked.text()
    async with transaction(client.app[appkeys.DB]) as session:
        rows = (await session.exec(select(AuditLog).where(AuditLog.target == user.username))).all()
    assert [r.action for r in rows].count("login.failed") == 5
    assert "login.throttled" in [r.action for r in rows]


async def test_logout_needs_csrf_and_ends_the_session(client, settings):
    user = await make_user(settings, Role.COMPLIANCE)
    await login(client, user.username)
    page = await client.get("/compliance")
    assert page.status == 200
    refused = await client.post("/logout", data={}, allow_redirects=False)
    assert refused.status == 403
    token = csrf_from(await page.text())
    done = await client.post("/logout", data={"csrf_token": token}, allow_redirects=False)
    assert done.status == 303
    assert (await client.get("/compliance", allow_redirects=False)).status == 302


@pytest.mark.parametrize("token", [None, "wrong-token"])
async def test_login_post_without_the_right_csrf_token_is_refused(client, settings, token):
    user = await make_user(settings, Role.ADVISOR)
    await client.get("/login")
    data = {"username": user.username, "password": "x" * 10}
    if token:
        data["csrf_token"] = token
    response = await client.post("/login", data=data)
    assert response.status == 403
    assert "CSRF" in await response.text()


async def test_guest_customer_gets_an_identity_of_its_own(client, aiohttp_client, settings):
    first = await client.get("/")
    assert first.status == 200
    assert "Talk to us" in await first.text()
    other = await aiohttp_client(create_app(settings))
    assert (await other.get("/")).status == 200
    mine = client.session.cookie_jar.filter_cookies(client.make_url("/"))["cc_session"].value
    theirs = other.session.cookie_jar.filter_cookies(other.make_url("/"))["cc_session"].value
    assert mine != theirs


@pytest.mark.parametrize("role", list(Role))
async def test_every_role_page_is_refused_to_the_other_roles(aiohttp_client, client, settings, role):
    user = await make_user(settings, role)
    assert (await login(client, user.username)).status == 303
    assert set(ROLE_PAGES) == set(ROLE_OF_PAGE)
    for path, allowed in ROLE_OF_PAGE.items():
        response = await client.get(path, allow_redirects=False)
        expected = 200 if role in allowed else 403
        assert response.status == expected, (role, path, response.status)


async def test_pages_redirect_anonymous_visitors_to_sign_in(client):
    for path in ("/advisor", "/supervisor", "/compliance", "/admin"):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 302
        assert response.headers["Location"] == f"/login?next={path}"


async def test_next_parameter_cannot_redirect_off_site(client, settings):
    user = await make_user(settings, Role.ADVISOR)
    page = await client.get("/login")
    response = await client.post(
        "/login",
        data={
            "username": user.username,
            "password": "correct horse battery",
            "csrf_token": csrf_from(await page.text()),
            "next": "//evil.example/",
        },
        allow_redirects=False,
    )
    assert response.headers["Location"] == "/advisor"


async def test_request_body_limit(client):
    page = await client.get("/login")
    token = csrf_from(await page.text())
    response = await client.post(
        "/login", data={"username": "x", "password": "y" * (2 * 1024 * 1024), "csrf_token": token}
    )
    assert response.status == 413
