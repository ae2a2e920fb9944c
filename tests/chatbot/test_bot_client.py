"""chatbot.client against servers that are down, failing or slow (real sockets, no mocks)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from chatbot.client import BotError, BotUnavailable, RasaClient
from chatbot.services import free_port


async def test_closed_port_raises_bot_unavailable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with aiohttp.ClientSession() as session:
        client = RasaClient(url, session=session, timeout=2)
        with pytest.raises(BotUnavailable, match="unreachable"):
            await client.parse("hello")
        with pytest.raises(BotUnavailable):
            await client.send("s1", "hello")
        assert not await client.healthy()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _server(aiohttp_server: AiohttpServer, handler: Handler) -> str:
    app = web.Application()
    app.router.add_post("/model/parse", handler)
    app.router.add_post("/webhooks/rest/webhook", handler)
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/")


async def test_5xx_raises_bot_unavailable(aiohttp_server: AiohttpServer) -> None:
    async def fail(request: web.Request) -> web.Response:
        return web.Response(status=503, text="loading model")

    async with aiohttp.ClientSession() as session:
        client = RasaClient(await _server(aiohttp_server, fail), session=session)
        with pytest.raises(BotUnavailable, match="503"):
            await client.send("s1", "hi")


async def test_4xx_is_a_bot_error_not_unavailable(aiohttp_server: AiohttpServer) -> None:
    async def bad(request: web.Request) -> web.Response:
        return web.Response(status=400, text="bad request")

    async with aiohttp.ClientSession() as session:
        client = RasaClient(await _server(aiohttp_server, bad), session=session)
        with pytest.raises(BotError) as info:
            await client.parse("hi")
        assert not isinstance(info.value, BotUnavailable)


async def test_timeout_raises_bot_unavailable(aiohttp_server: AiohttpServer) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response([])

    async with aiohttp.ClientSession() as session:
        client = RasaClient(await _server(aiohttp_server, slow), session=session, timeout=0.2)
        with pytest.raises(BotUnavailable, match="within"):
            await client.send("s1", "hi")
