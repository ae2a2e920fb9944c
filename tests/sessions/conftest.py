"""Fixtures for session tests: a real server (aiohttp test server) and signalling clients."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp.test_utils import TestServer

from contact_center.app import create_app
from contact_center.config import Settings
from contact_center.models import Role
from contact_center.wsclient import SignallingClient
from tests.helpers import PASSWORD, make_user


@pytest.fixture
def fast_settings(settings: Settings) -> Settings:
    """Loopback-only media and short grace periods, so that tests do not wait a minute."""
    return settings.model_copy(
        update={
            "ice_host_addresses": ["127.0.0.1"],
            "customer_grace_s": 1.0,
            "advisor_grace_s": 1.0,
            "ws_rate_per_s": 500.0,
            "ws_burst": 500,
        }
    )


@pytest.fixture
async def server(fast_settings: Settings, redis_client) -> AsyncIterator[TestServer]:  # type: ignore[no-untyped-def]
    app = create_app(fast_settings)
    srv = TestServer(app, host="127.0.0.1")
    await srv.start_server()
    try:
        yield srv
    finally:
        await close_or_dump(srv)


async def close_or_dump(srv: TestServer, seconds: float = 30) -> None:
    """Close the server; if that hangs, print every task's stack and fail instead of hanging."""
    try:
        async with asyncio.timeout(seconds):
            await srv.close()
    except TimeoutError:
        for task in asyncio.all_tasks():
            print(f"--- task {task.get_name()}", file=sys.stderr)
            task.print_stack(file=sys.stderr)
        raise


@pytest.fixture
async def clients(server: TestServer) -> AsyncIterator[Callable[..., object]]:
    made: list[SignallingClient] = []

    async def make(*, username: str | None = None, guest: bool = False) -> SignallingClient:
        client = SignallingClient(str(server.make_url("")))
        if guest:
            await client.as_guest()
        elif username:
            await client.login(username, PASSWORD)
        await client.connect()
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


@pytest.fixture
def advisor_factory(fast_settings: Settings):  # type: ignore[no-untyped-def]
    async def make(**fields: object):  # type: ignore[no-untyped-def]
        fields.setdefault("languages", ["en"])
        fields.setdefault("skills", {"general": 3, "cards": 4})
        return await make_user(fast_settings, Role.ADVISOR, **fields)

    return make
