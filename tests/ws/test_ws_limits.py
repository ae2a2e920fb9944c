"""Issue 13, defect 9: guest contacts are limited per address, and ``offer.accept`` does not
tell which contact ids exist."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from contact_center.db.models import Role
from contact_center.server.app import create_app
from contact_center.tools.wsclient import RequestFailed, SignallingClient
from tests.helpers import PASSWORD, make_user


@pytest.fixture
async def proxied(fast_settings, redis_client):  # type: ignore[no-untyped-def]
    """A server behind a proxy we trust (this machine), at most 3 guest contacts per address."""
    settings = fast_settings.model_copy(
        update={"trusted_proxies": ["127.0.0.1"], "guest_contacts_per_address": 3}
    )
    srv = TestServer(create_app(settings), host="127.0.0.1", port=settings.port)
    await srv.start_server()
    made: list[SignallingClient] = []

    async def connect(address: str, username: str | None = None) -> SignallingClient:
        http = aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True), headers={"X-Forwarded-For": address}
        )
        client = SignallingClient(str(srv.make_url("")), session=http)
        if username:
            await client.login(username, PASSWORD)
        else:
            await client.as_guest()
        await client.connect()
        made.append(client)
        return client

    yield srv, connect, settings
    for client in made:
        await client.close()
        await client.http.close()
    await srv.close()


async def _start(client: SignallingClient) -> dict:
    return await client.request("session.start", channels=["text"], language="en", skip_bot=True)


async def test_one_address_queues_a_few_guest_contacts_not_thirty(proxied):
    _, connect, _ = proxied
    accepted, refused = 0, []
    for _ in range(8):
        try:
            await _start(await connect("203.0.113.5"))
            accepted += 1
        except RequestFailed as exc:
            refused.append(exc)
    assert accepted == 3
    assert {e.code for e in refused} == {"rate_limited"}
    assert "from your network" in refused[0].message
    # another address, and a signed-in customer on the same one, are not held back
    assert (await _start(await connect("198.51.100.7")))["contact_id"]


async def test_signed_in_customers_are_not_counted_as_guests(proxied):
    _, connect, settings = proxied
    for _ in range(4):
        customer = await make_user(settings, Role.CUSTOMER)
        assert (await _start(await connect("203.0.113.6", customer.username)))["contact_id"]


async def test_a_refused_start_gives_its_place_back(proxied):
    _, connect, _ = proxied
    guest = await connect("203.0.113.8")
    await _start(guest)
    for _ in range(3):  # already in a conversation: refused, and not counted
        with pytest.raises(RequestFailed, match="already_started"):
            await _start(guest)
    for _ in range(2):
        assert (await _start(await connect("203.0.113.8")))["contact_id"]


async def test_offer_accept_answers_alike_for_a_real_and_an_invented_contact(server, clients, fast_settings):
    advisor = await make_user(fast_settings, Role.ADVISOR)
    customer = await clients(guest=True)
    real = (await _start(customer))["contact_id"]  # queued: no advisor is available
    console = await clients(username=advisor.username)
    for kind in ("offer.accept", "offer.reject"):
        answers = []
        for contact_id in (real, "0" * 32):
            with pytest.raises(RequestFailed) as refused:
                await console.request(kind, contact_id=contact_id)
            answers.append((refused.value.code, refused.value.message.replace(contact_id, "<id>")))
        assert answers[0] == answers[1] == ("not_found", "no offer of contact <id> for you"), answers
