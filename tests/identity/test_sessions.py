"""Issue 13, defect 4: a signed-in session lives in Redis as well as in its cookie, so that
signing out, disabling the account or changing its password ends it everywhere."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from sqlmodel import select

from contact_center import appkeys, redis_keys
from contact_center.db.engine import transaction
from contact_center.db.models import Role, User
from contact_center.identity import users
from contact_center.server.app import SESSION_COOKIE, create_app
from tests.helpers import PASSWORD, csrf_from, login, make_user
from tests.redis_servers import ON_CLUSTER_TOO


def cookie_of(client) -> str:  # type: ignore[no-untyped-def]
    return client.session.cookie_jar.filter_cookies(client.make_url("/"))[SESSION_COOKIE].value


async def status_with_cookie(client, path: str, cookie: str) -> int:  # type: ignore[no-untyped-def]
    """GET ``path`` from another machine that holds a copy of ``cookie``."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as other:
        async with other.get(
            client.make_url(path), headers={"Cookie": f"{SESSION_COOKIE}={cookie}"},
            allow_redirects=False,
        ) as response:
            return response.status


async def sign_out(client) -> None:  # type: ignore[no-untyped-def]
    token = csrf_from(await (await client.get("/login")).text())
    assert (await client.post("/logout", data={"csrf_token": token}, allow_redirects=False)).status == 303


@ON_CLUSTER_TOO
async def test_a_copied_cookie_is_refused_after_sign_out(client, settings):
    user = await make_user(settings, Role.COMPLIANCE)
    assert (await login(client, user.username)).status == 303
    copied = cookie_of(client)
    assert await status_with_cookie(client, "/compliance", copied) == 200
    await sign_out(client)
    assert await status_with_cookie(client, "/compliance", copied) == 302


async def test_signing_in_again_ends_the_session_it_replaces(client, settings):
    first = await make_user(settings, Role.ADVISOR)
    second = await make_user(settings, Role.SUPERVISOR)
    await login(client, first.username)
    before = cookie_of(client)
    await login(client, second.username)
    assert await status_with_cookie(client, "/advisor", before) == 302
    assert (await client.get("/supervisor", allow_redirects=False)).status == 200


@pytest.fixture
async def two_browsers(aiohttp_client, client, settings):  # type: ignore[no-untyped-def]
    """The same compliance officer signed in from two browsers."""
    user = await make_user(settings, Role.COMPLIANCE)
    other = await aiohttp_client(client.server)
    for browser in (client, other):
        assert (await login(browser, user.username)).status == 303
        assert (await browser.get("/compliance", allow_redirects=False)).status == 200
    return user, client, other


@ON_CLUSTER_TOO
async def test_disabling_a_user_ends_all_their_sessions(two_browsers):
    user, one, other = two_browsers
    async with transaction(one.app[appkeys.DB]) as session:
        await users.set_disabled(session, user_id=user.id, disabled=True)
    await one.app[appkeys.SESSIONS].revoke_user(user.id)
    for browser in (one, other):
        assert (await browser.get("/compliance", allow_redirects=False)).status == 302
    assert (await login(one, user.username)).status == 401


async def test_changing_the_password_ends_all_their_sessions(two_browsers):
    user, one, other = two_browsers
    async with transaction(one.app[appkeys.DB]) as session:
        await users.set_password(session, user_id=user.id, password="a brand new passphrase")
    await one.app[appkeys.SESSIONS].revoke_user(user.id)
    for browser in (one, other):
        assert (await browser.get("/compliance", allow_redirects=False)).status == 302
    assert (await login(one, user.username, PASSWORD)).status == 401
    assert (await login(one, user.username, "a brand new passphrase")).status == 303


async def test_a_change_made_only_in_the_database_is_noticed(two_browsers):
    """Without the Redis half (a CLI with no Redis at hand), the periodic re-check of the
    account ends the sessions: here at once, in production within a minute."""
    user, one, other = two_browsers
    one.app[appkeys.SESSIONS].recheck_s = 0
    async with transaction(one.app[appkeys.DB]) as session:
        row = (await session.exec(select(User).where(User.id == user.id))).one()
        row.password_hash = users.hash_password("changed behind our back")
        session.add(row)
    for browser in (one, other):
        assert (await browser.get("/compliance", allow_redirects=False)).status == 302


async def test_staff_sessions_end_when_idle_and_activity_keeps_them(
    aiohttp_client, settings, redis_client
):
    client = await aiohttp_client(create_app(settings.model_copy(update={"staff_idle_timeout_s": 2})))
    user = await make_user(settings, Role.SUPERVISOR)
    await login(client, user.username)
    for _ in range(4):  # 3 s of activity, a request every 0.75 s
        await asyncio.sleep(0.75)
        assert (await client.get("/supervisor", allow_redirects=False)).status == 200
    await asyncio.sleep(2.5)
    assert (await client.get("/supervisor", allow_redirects=False)).status == 302


async def test_sessions_end_after_their_maximum_age(client, settings, redis_client):
    user = await make_user(settings, Role.ADVISOR)
    await login(client, user.username)
    (sid,) = await redis_client.smembers(redis_keys.user_sessions(user.id))
    await redis_client.hset(redis_keys.session(sid), "created", time.time() - 13 * 3600)
    assert (await client.get("/advisor", allow_redirects=False)).status == 302
