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


async def test_a_rasa_without_the_contact_center_channel_is_asked_by_rest_and_parse(
    aiohttp_server: AiohttpServer,
) -> None:
    """A stock Rasa (REST channel only): the turn falls back to the REST webhook and
    /model/parse at once, and the channel is not asked again."""
    asked: list[str] = []

    async def rasa(request: web.Request) -> web.Response:
        asked.append(request.path)
        if request.path == "/model/parse":
            return web.json_response({"intent": {"name": "greet", "confidence": 0.9},
                                      "intent_ranking": [{"name": "greet", "confidence": 0.9}]})
        return web.json_response([{"recipient_id": "s1", "text": "Hello!"}])

    app = web.Application()
    app.router.add_post("/model/parse", rasa)
    app.router.add_post("/webhooks/rest/webhook", rasa)
    server = await aiohttp_server(app)
    async with aiohttp.ClientSession() as session:
        client = RasaClient(str(server.make_url("")).rstrip("/"), session=session)
        for _ in range(2):
            messages, parsed = await client.turn("s1", "hi")
            assert messages == [{"recipient_id": "s1", "text": "Hello!"}]
            assert parsed is not None and parsed.intent == "greet"
    assert sorted(asked) == ["/model/parse"] * 2 + ["/webhooks/rest/webhook"] * 2


async def test_a_channel_answer_without_messages_is_a_bot_error(
    aiohttp_server: AiohttpServer,
) -> None:
    async def broken(request: web.Request) -> web.Response:
        return web.json_response({"parse": None})

    app = web.Application()
    app.router.add_post("/webhooks/contact_center/webhook", broken)
    server = await aiohttp_server(app)
    async with aiohttp.ClientSession() as session:
        client = RasaClient(str(server.make_url("")).rstrip("/"), session=session)
        with pytest.raises(BotError, match="without messages"):
            await client.turn("s1", "hi")
