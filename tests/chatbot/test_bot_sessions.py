"""The bot in front of the queue, end to end: real WebSocket, DB, Redis, router and Rasa."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlmodel import select

from chatbot.client import RasaClient
from chatbot.language import detect
from chatbot.services import RasaServices, free_port
from contact_center import appkeys
from contact_center.bot.gateway import UNAVAILABLE, BotGateway
from contact_center.config import Settings
from contact_center.db.engine import transaction
from contact_center.db.models import Contact, ContactEvent, Role
from contact_center.server.app import create_app
from contact_center.server.contexts import bot_ctx, rasa_ctx
from contact_center.tools.wsclient import SignallingClient
from tests.helpers import PASSWORD, make_user

ServerFactory = Callable[..., Awaitable[TestServer]]


def closed_url() -> str:
    """A loopback URL where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
async def make_server(fast_settings: Settings, redis_client: Any) -> AsyncIterator[ServerFactory]:
    """An app whose bot talks to ``rasa_url``; ``turn_url`` sends bot turns elsewhere (a Rasa
    that answered when the session started and is gone mid-conversation)."""
    servers: list[TestServer] = []

    async def make(rasa_url: str, *, turn_url: str | None = None) -> TestServer:
        app = create_app(fast_settings.model_copy(update={"rasa_url": rasa_url, "bot_enabled": True}))
        if turn_url is not None:
            app.cleanup_ctx.append(_gateway_ctx(rasa_url, turn_url))
        elif bot_ctx not in app.cleanup_ctx:  # until create_app wires it
            app.cleanup_ctx.append(bot_ctx)
        srv = TestServer(app, host="127.0.0.1")
        await srv.start_server()
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        await srv.close()


def _gateway_ctx(probe_url: str, turn_url: str) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession() as http:
            app[appkeys.BOT] = BotGateway(
                app[appkeys.CONTACTS], RasaClient(turn_url, session=http, timeout=5),
                probe=RasaClient(probe_url, session=http, timeout=5),
            )
            yield

    return ctx


@pytest.fixture
async def clients() -> AsyncIterator[Callable[..., Awaitable[SignallingClient]]]:
    made: list[SignallingClient] = []

    async def make(server: TestServer, *, username: str | None = None) -> SignallingClient:
        client = SignallingClient(str(server.make_url("")))
        if username:
            await client.login(username, PASSWORD)
        else:
            await client.as_guest()
        await client.connect()
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


async def available_advisor(settings: Settings, server: TestServer, clients: Any,
                            languages: list[str]) -> SignallingClient:
    user = await make_user(settings, Role.ADVISOR, languages=languages,
                           skills={"general": 3, "cards": 3})
    advisor: SignallingClient = await clients(server, username=user.username)
    assert (await advisor.request("agent.status", status="available"))["state"] == "available"
    return advisor


async def bot_reply(customer: SignallingClient, contact_id: str) -> str:
    message = await customer.wait_for("chat.message", contact_id=contact_id, sender="bot",
                                      timeout=30)
    return str(message["text"])


async def contact_and_events(server: TestServer, contact_id: str) -> tuple[Contact, list[ContactEvent]]:
    async with transaction(server.app[appkeys.DB]) as session:
        contact = await session.get(Contact, contact_id)
        events = (await session.exec(
            select(ContactEvent).where(ContactEvent.contact_id == contact_id)
            .order_by(ContactEvent.id)  # type: ignore[arg-type]
        )).all()
    assert contact is not None
    return contact, list(events)


@pytest.mark.rasa
async def test_cantonese_customer_is_answered_then_handed_to_a_cantonese_advisor(
    rasa_services: RasaServices, make_server: ServerFactory, clients: Any, fast_settings: Settings,
) -> None:
    server = await make_server(rasa_services.url)
    mandarin = await available_advisor(fast_settings, server, clients, ["zh"])
    cantonese = await available_advisor(fast_settings, server, clients, ["yue"])
    customer = await clients(server)

    started = await customer.request("session.start", channels=["text"], language="yue")
    contact_id = started["contact_id"]
    assert started["state"] == "bot"
    greeting = await bot_reply(customer, contact_id)
    assert detect(greeting).language == "yue" and "助理" in greeting

    await customer.request("chat.send", contact_id=contact_id, text="你哋幾點開門呀？")
    hours = await bot_reply(customer, contact_id)
    found = detect(hours)
    assert (found.language, found.script) == ("yue", "hant"), hours
    assert "營業時間" in hours

    await customer.request("chat.send", contact_id=contact_id, text="我想搵真人傾")
    goodbye = await bot_reply(customer, contact_id)
    assert "轉駁" in goodbye
    await customer.wait_for("session.state", contact_id=contact_id, state="queued", reason="handoff")

    offer = await cantonese.wait_for("offer", contact_id=contact_id, timeout=15)
    assert offer["language"] == "yue" and offer["skills"] == {"general": 1}
    said = [(line["sender"], line["text"]) for line in offer["transcript"]]
    assert said == [("bot", greeting), ("customer", "你哋幾點開門呀？"), ("bot", hours),
                    ("customer", "我想搵真人傾"), ("bot", goodbye)]
    await asyncio.sleep(1.0)  # time for a wrong offer to show up
    assert not [m for m in mandarin.seen if m["type"] == "offer"]

    contact, events = await contact_and_events(server, contact_id)
    assert contact.language == "yue" and contact.skills == {"general": 1}
    handoff = next(e for e in events if e.kind == "handoff")
    assert handoff.actor == "bot" and handoff.to_state == "queued"
    assert handoff.data["intent"] == "request_human"
    # the advisor is told what the bot understood, and a guest is not a VIP
    assert offer["facts"]["intent"] == "request_human" and offer["facts"]["vip"] is False
    assert offer["facts"]["guest"] is True
    assert [t["text"] for t in handoff.data["transcript"] if t["role"] == "customer"] == [
        "你哋幾點開門呀？", "我想搵真人傾"]

    # The bot is out of the conversation now: the next line is the advisor's to read.
    await cantonese.request("offer.accept", contact_id=contact_id)
    await customer.request("chat.send", contact_id=contact_id, text="你好")
    line = await cantonese.wait_for("chat.message", contact_id=contact_id, text="你好")
    assert line["sender"] == "customer"
    await asyncio.sleep(0.5)
    assert not [m for m in customer.seen if m["type"] == "chat.message" and m["sender"] == "bot"]


@pytest.mark.rasa
async def test_two_misunderstandings_in_a_row_hand_off(
    rasa_services: RasaServices, make_server: ServerFactory, clients: Any,
) -> None:
    server = await make_server(rasa_services.url)
    customer = await clients(server)
    contact_id = (await customer.request("session.start", channels=["text"], language="en",
                                         topic="cards"))["contact_id"]
    await bot_reply(customer, contact_id)  # greeting

    await customer.request("chat.send", contact_id=contact_id, text="what's the capital of peru")
    first = await bot_reply(customer, contact_id)
    assert first.startswith("Sorry, I didn't quite understand")
    contact, _ = await contact_and_events(server, contact_id)
    assert contact.state == "bot"

    await customer.request("chat.send", contact_id=contact_id, text="zxcvbnm qwerty")
    second = await bot_reply(customer, contact_id)
    assert "connecting you to an advisor" in second
    await customer.wait_for("session.state", contact_id=contact_id, state="queued", reason="handoff")
    contact, events = await contact_and_events(server, contact_id)
    assert contact.state == "queued" and contact.language == "en"
    assert next(e for e in events if e.kind == "handoff").data["intent"] == "nlu_fallback"


async def test_rasa_down_at_start_queues_with_the_chosen_language(
    make_server: ServerFactory, clients: Any, fast_settings: Settings,
) -> None:
    server = await make_server(closed_url())
    advisor = await available_advisor(fast_settings, server, clients, ["zh"])
    customer = await clients(server)

    started = await customer.request("session.start", channels=["text"], language="zh",
                                     topic="cards")
    contact_id = started["contact_id"]
    assert started["state"] == "queued"
    notice = await customer.wait_for("chat.message", contact_id=contact_id, sender="system")
    assert notice["text"] == UNAVAILABLE["zh"]

    offer = await advisor.wait_for("offer", contact_id=contact_id, timeout=15)
    assert offer["language"] == "zh" and offer["skills"] == {"cards": 2}
    assert [line["sender"] for line in offer["transcript"]] == ["system"]
    contact, events = await contact_and_events(server, contact_id)
    assert [e.to_state for e in events if e.to_state] == ["bot", "queued", "offered"]
    assert next(e for e in events if e.kind == "handoff").data["reason"] == "bot_unavailable"


@pytest.mark.rasa
async def test_rasa_gone_mid_conversation_queues_and_loses_nothing(
    rasa_services: RasaServices, make_server: ServerFactory, clients: Any,
) -> None:
    server = await make_server(rasa_services.url, turn_url=closed_url())
    customer = await clients(server)
    contact_id = (await customer.request("session.start", channels=["text"],
                                         language="yue"))["contact_id"]
    await bot_reply(customer, contact_id)  # greeting: Rasa answered the health check

    sent = await customer.request("chat.send", contact_id=contact_id, text="張卡唔見咗")
    notice = await customer.wait_for("chat.message", contact_id=contact_id, sender="system")
    assert notice["text"] == UNAVAILABLE["yue"]
    await customer.wait_for("session.state", contact_id=contact_id, state="queued")
    contact, _ = await contact_and_events(server, contact_id)
    assert contact.state == "queued" and contact.language == "yue"

    # Queued now: the next line is kept for the advisor, not sent to the bot.
    again = await customer.request("chat.send", contact_id=contact_id, text="仲有人喺度嗎")
    assert again["seq"] > sent["seq"]
    history = await server.app[appkeys.CONTACTS].history(contact_id)
    assert [(h["sender"], h["text"]) for h in history][1:] == [
        ("customer", "張卡唔見咗"), ("system", UNAVAILABLE["yue"]), ("customer", "仲有人喺度嗎")]


@pytest.mark.rasa
@pytest.mark.slow
async def test_rasa_manage_runs_rasa_with_the_app(
    rasa_services: RasaServices, fast_settings: Settings,
) -> None:
    async def healthy(url: str) -> bool:
        async with aiohttp.ClientSession() as http:
            return await RasaClient(url, session=http, timeout=2).healthy()

    # One answers already at rasa_url: it is used, nothing is started.
    app = web.Application()
    app[appkeys.SETTINGS] = fast_settings.model_copy(
        update={"rasa_url": rasa_services.url, "rasa_manage": True, "bot_enabled": True})
    running = rasa_ctx(app)
    await anext(running)
    assert app[appkeys.RASA_SERVICES] is None
    await anext(running, None)

    url = closed_url()
    app = web.Application()
    app[appkeys.SETTINGS] = fast_settings.model_copy(
        update={"rasa_url": url, "rasa_manage": True, "bot_enabled": True,
                "rasa_actions_port": free_port()})
    managed = rasa_ctx(app)
    await anext(managed)
    try:
        services = app[appkeys.RASA_SERVICES]
        assert services is not None and services.url == url
        assert await healthy(url)
    finally:
        await anext(managed, None)
    assert not services.running and not await healthy(url)
