"""A hello without a cookie (the widget inside a bank's page, where third-party cookies may be
blocked): the bank's signed token or a new guest, then a rejoin token for the next hello."""

from __future__ import annotations

import aiohttp
import pytest
from pydantic import SecretStr

from contact_center.tools.bank_issuer import issue
from contact_center.tools.wsclient import RequestFailed, SignallingClient

SECRET = "bank-shared-secret-" + "w" * 32


@pytest.fixture
def fast_settings(fast_settings):  # type: ignore[no-untyped-def]
    return fast_settings.model_copy(update={"bank_token_secret": SecretStr(SECRET)})


def _cookieless(server) -> SignallingClient:  # type: ignore[no-untyped-def]
    # A jar that keeps nothing: like a browser that blocks third-party cookies.
    return SignallingClient(
        str(server.make_url("")), session=aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
    )


async def test_a_signed_vip_says_hello_without_a_cookie_and_rejoins_once(server, advisor_factory, clients):
    advisor_user = await advisor_factory()
    advisor = await clients(username=advisor_user.username)
    await advisor.request("agent.status", status="available")
    token = issue(SECRET, customer_id="W-77", name="Mei Chan", vip=True, lang="en")
    customer = _cookieless(server)
    try:
        welcome = await customer.connect(bank_token=token)
        assert welcome["display_name"] == "Mei Chan" and welcome["role"] == "customer"
        rejoin = customer.hello_result["rejoin_token"]
        started = await customer.request("session.start", channels=["text"], language="en", skip_bot=True)
        offer = await advisor.wait_for("offer", contact_id=started["contact_id"])
        assert offer["facts"]["vip"] is True and offer["facts"]["customer_name"] == "Mei Chan"
        await customer.close()

        again = _cookieless(server)
        try:
            assert (await again.connect(token=rejoin))["display_name"] == "Mei Chan"
            assert again.hello_result["rejoin_token"] != rejoin  # a fresh one each time
        finally:
            await again.close()
        replay = _cookieless(server)
        try:
            with pytest.raises(RequestFailed, match="unknown, used or expired"):
                await replay.connect(token=rejoin)
        finally:
            await replay.close()
    finally:
        await customer.close()


async def test_a_replayed_or_forged_bank_token_is_refused_with_its_reason(server):
    token = issue(SECRET, customer_id="W-78", name="Ken", lang="en")
    first = _cookieless(server)
    await first.connect(bank_token=token)
    await first.close()
    for bad, reason in ((token, "token_replayed"), (issue("x" * 40, customer_id="W-79", name="Eve"), "token_bad_signature")):
        client = _cookieless(server)
        try:
            with pytest.raises(RequestFailed) as refused:
                await client.connect(bank_token=bad)
            assert refused.value.code == "unauthenticated" and reason in refused.value.message
        finally:
            await client.close()


async def test_a_cookieless_guest_and_a_hello_with_nothing(server):
    guest = _cookieless(server)
    try:
        welcome = await guest.connect(guest=True)
        assert welcome["user"].startswith("guest:") and guest.hello_result["rejoin_token"]
    finally:
        await guest.close()
    nobody = _cookieless(server)
    try:
        with pytest.raises(RequestFailed, match="sign in"):
            await nobody.connect()
    finally:
        await nobody.close()


async def test_a_cookie_hello_gets_no_rejoin_token(server, clients):
    customer = await clients(guest=True)
    assert customer.hello_result == {}
