"""Issue 13, defect 4 on the WebSocket: an open socket ends with its session."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestServer

from contact_center import appkeys
from contact_center.db.models import Role
from contact_center.server.app import create_app
from contact_center.tools.wsclient import RequestFailed, SignallingClient
from contact_center.ws import sessions
from tests.helpers import PASSWORD, make_user


@pytest.fixture(autouse=True)
def quick_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sessions, "SWEEP_S", 0.2)


async def closed_within(client: SignallingClient, seconds: float) -> int | None:
    assert client.ws is not None
    async with asyncio.timeout(seconds):
        while not client.ws.closed:
            await asyncio.sleep(0.05)
    return client.ws.close_code


async def test_an_open_socket_closes_when_its_session_is_revoked(server, clients, fast_settings):
    advisor = await make_user(fast_settings, Role.ADVISOR)
    bystander = await clients(guest=True)
    conn = await clients(username=advisor.username)
    assert conn.welcome and conn.welcome["role"] == "advisor"
    assert await server.app[appkeys.SESSIONS].revoke_user(advisor.id) == 1
    assert await closed_within(conn, 5) == sessions.SESSION_ENDED
    assert any(m.get("code") == "unauthenticated" for m in conn.seen)
    # a guest has no session to end, and other sockets are untouched
    assert bystander.ws is not None and not bystander.ws.closed


async def test_sign_out_closes_the_socket_opened_with_that_session(server, fast_settings):
    advisor = await make_user(fast_settings, Role.ADVISOR)
    client = SignallingClient(str(server.make_url("")))
    try:
        await client.login(advisor.username, PASSWORD)
        await client.connect()
        async with client.http.get(f"{client.base_url}/advisor") as page:
            token = (await page.text()).split('name="csrf-token" content="')[1].split('"')[0]
        async with client.http.post(
            f"{client.base_url}/logout", data={"csrf_token": token}, allow_redirects=False
        ) as response:
            assert response.status == 303
        assert await closed_within(client, 5) == sessions.SESSION_ENDED
    finally:
        await client.close()


async def test_a_ws_token_of_an_ended_session_is_refused(server, fast_settings):
    advisor = await make_user(fast_settings, Role.ADVISOR)
    client = SignallingClient(str(server.make_url("")))
    try:
        await client.login(advisor.username, PASSWORD)
        async with client.http.get(f"{client.base_url}/advisor") as page:
            csrf = (await page.text()).split('name="csrf-token" content="')[1].split('"')[0]
        async with client.http.post(
            f"{client.base_url}/api/ws-token", headers={"X-CSRF-Token": csrf}
        ) as response:
            token = (await response.json())["token"]
        await server.app[appkeys.SESSIONS].revoke_user(advisor.id)
        client.http.cookie_jar.clear()
        with pytest.raises(RequestFailed) as refused:
            client.ws = await client.http.ws_connect(f"{client.base_url.replace('http', 'ws')}/ws")
            client._reader = asyncio.create_task(client._read())
            await client.request("hello", token=token)
        assert refused.value.code == "unauthenticated"
    finally:
        await client.close()


async def test_messages_on_the_socket_count_as_activity(fast_settings, redis_client):
    settings = fast_settings.model_copy(update={"staff_idle_timeout_s": 2})
    srv = TestServer(create_app(settings), host="127.0.0.1", port=settings.port)
    await srv.start_server()
    advisor = await make_user(settings, Role.ADVISOR)
    client = SignallingClient(str(srv.make_url("")))
    try:
        await client.login(advisor.username, PASSWORD)
        await client.connect()
        for _ in range(6):  # 3 s of work, a message every 0.5 s: the session stays
            await asyncio.sleep(0.5)
            await client.request("agent.status", status="available")
        assert client.ws is not None and not client.ws.closed
        # then nothing for longer than the idle timeout: the session and the socket end
        assert await closed_within(client, 6) == sessions.SESSION_ENDED
    finally:
        await client.close()
        await srv.close()
