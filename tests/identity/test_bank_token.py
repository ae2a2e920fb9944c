"""Signed customer identity from the bank's app, on the real app (real database and Redis):
what signs in, what does not and why, replays, and a VIP routed as one."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator

import jwt
import pytest
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from contact_center import appkeys, redis_keys
from contact_center.config import SettingsError, load_settings
from contact_center.server.app import create_app
from contact_center.tools.bank_issuer import issue
from contact_center.tools.wsclient import SignallingClient
from tests.conftest import close_or_dump
from tests.helpers import ROOT, cli_env, login

SECRET = "bank-shared-secret-" + "s" * 32
URL = "/api/identity/bank-token"


def _csrf(html: str) -> str:
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', html)
    assert match
    return match.group(1)


def _token(**changes: object) -> str:
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": "C-1029", "name": "Mei Chan", "vip": True, "lang": "yue",
        "iat": now, "exp": now + 120, "jti": uuid.uuid4().hex,
    }
    claims.update(changes)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, SECRET, algorithm="HS256")


@pytest.fixture
async def bank_client(aiohttp_client, settings, redis_client):  # type: ignore[no-untyped-def]
    app = create_app(settings.model_copy(update={"bank_token_secret": SecretStr(SECRET)}))
    return await aiohttp_client(app)


async def _post(client, token: str):  # type: ignore[no-untyped-def]
    csrf = _csrf(await (await client.get("/")).text())
    return await client.post(URL, json={"token": token}, headers={"X-CSRF-Token": csrf})


async def test_without_a_secret_the_feature_is_off_and_says_so(client):
    response = await _post(client, _token())
    assert response.status == 503
    body = await response.json()
    assert body["error"] == "bank_identity_off" and "CC_BANK_TOKEN_SECRET" in body["message"]


async def test_a_valid_token_signs_the_customer_in_once(bank_client, redis_client):
    token = _token()
    response = await _post(bank_client, token)
    assert response.status == 200, await response.text()
    assert await response.json() == {
        "display_name": "Mei Chan", "vip": True, "language": "yue", "home": "/",
    }
    page = await (await bank_client.get("/")).text()
    # the role in the header is translated by the page (English as rendered)
    who = 'Mei Chan · <span class="role" data-i18n="admin.role_customer">Customer</span>'
    assert who in page and "Priority customer" in page
    assert '<html lang="zh-Hant-HK">' in page  # the preferred language
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    ttl = await redis_client.ttl(redis_keys.bank_token_seen(jti))
    assert 100 < ttl <= 135  # kept until the token expires (and the leeway), not for ever

    again = await _post(bank_client, token)
    assert again.status == 401
    assert (await again.json())["error"] == "token_replayed"

    # the account has no password: the sign-in form never opens it
    refused = await login(bank_client, "bank:C-1029", "")
    assert refused.status != 302
    refused = await login(bank_client, "bank:C-1029", "!bank-token-only")
    assert refused.status != 302


async def test_a_new_token_brings_the_account_up_to_date(bank_client):
    assert (await _post(bank_client, _token(vip=True))).status == 200
    response = await _post(bank_client, _token(vip=False, name="Mei Chan-Lee", lang="en"))
    assert await response.json() == {
        "display_name": "Mei Chan-Lee", "vip": False, "language": "en", "home": "/",
    }
    page = await (await bank_client.get("/")).text()
    # the badge is in every page (the widget shows it when a VIP signs in), hidden here
    assert 'id="vip-badge" class="badge hidden"' in page and '<html lang="en">' in page


def _other_alg() -> str:
    now = int(time.time())
    return jwt.encode(
        {"sub": "C1", "name": "X", "exp": now + 60, "jti": uuid.uuid4().hex}, SECRET,
        algorithm="HS512",
    )


def _unsigned() -> str:
    now = int(time.time())
    return jwt.encode(
        {"sub": "C1", "name": "X", "exp": now + 60, "jti": uuid.uuid4().hex}, None,
        algorithm="none",
    )


BAD = [
    ("expired", lambda: _token(exp=int(time.time()) - 60), 401, "token_expired"),
    ("long-lived", lambda: _token(exp=int(time.time()) + 3600), 401, "token_too_long_lived"),
    ("wrong secret", lambda: jwt.encode(
        {"sub": "C1", "name": "X", "exp": int(time.time()) + 60, "jti": "j" * 16},
        "another-secret-" + "x" * 32, algorithm="HS256"), 401, "token_bad_signature"),
    ("HS512", _other_alg, 401, "token_bad_algorithm"),
    ("alg none", _unsigned, 401, "token_bad_algorithm"),
    ("no jti", lambda: _token(jti=None), 401, "token_bad_claims"),
    ("no sub", lambda: _token(sub=None), 401, "token_bad_claims"),
    ("vip as text", lambda: _token(vip="yes"), 401, "token_bad_claims"),
    ("unknown language", lambda: _token(lang="fr"), 401, "token_bad_claims"),
    ("issued in the future", lambda: _token(iat=int(time.time()) + 600), 401, "token_not_yet_valid"),
    ("not a JWT", lambda: "hello.there", 400, "token_malformed"),
]


@pytest.mark.parametrize(("name", "make", "status", "code"), BAD, ids=[b[0] for b in BAD])
async def test_a_bad_token_gets_a_clear_error_and_nothing_more(
    bank_client, name, make, status, code
):
    response = await _post(bank_client, make())
    assert response.status == status, (name, await response.text())
    body = await response.json()
    assert body["error"] == code and body["message"]
    page = await (await bank_client.get("/")).text()
    assert 'data-i18n="admin.role_customer"' not in page  # still a guest: no name, no role


async def test_a_bad_body_or_no_csrf_token_is_refused(bank_client):
    csrf = _csrf(await (await bank_client.get("/")).text())
    response = await bank_client.post(URL, data=b"{", headers={"X-CSRF-Token": csrf})
    assert response.status == 400 and (await response.json())["error"] == "body_invalid"
    response = await bank_client.post(URL, json={"token": _token()})
    assert response.status == 403


async def test_a_bad_token_does_not_use_up_a_good_one(bank_client):
    jti = uuid.uuid4().hex
    forged = jwt.encode(
        {"sub": "C-1029", "name": "Mallory", "exp": int(time.time()) + 60, "jti": jti},
        "another-secret-" + "x" * 32, algorithm="HS256",
    )
    assert (await _post(bank_client, forged)).status == 401
    assert (await _post(bank_client, _token(jti=jti))).status == 200


def test_the_secret_is_checked_at_start() -> None:
    with pytest.raises(SettingsError, match="CC_BANK_TOKEN_SECRET: must be at least 32") as info:
        load_settings(bank_token_secret="short-but-secret")
    assert "short-but-secret" not in str(info.value)  # a secret is never echoed
    with pytest.raises(SettingsError, match="CC_BANK_TOKEN_SECRET: must differ"):
        load_settings(bank_token_secret=SECRET, secret_key=SECRET)
    assert load_settings(bank_token_secret="").bank_token_secret is None


def test_the_example_issuer_makes_a_token_the_server_accepts() -> None:
    env = cli_env(CC_BANK_TOKEN_SECRET=SECRET)
    done = subprocess.run(
        [sys.executable, "-m", "contact_center.tools.bank_issuer", "--id", "C-7", "--name",
         "Ken", "--vip", "--lang", "zh", "--url", "https://cc.example/"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=30,
    )
    assert done.returncode == 0, done.stderr
    url = done.stdout.strip()
    assert url.startswith("https://cc.example/#bank_token=")
    claims = jwt.decode(url.split("=", 1)[1], SECRET, algorithms=["HS256"])
    assert claims["sub"] == "C-7" and claims["vip"] is True and claims["lang"] == "zh"
    assert 0 < claims["exp"] - claims["iat"] <= 120
    missing = subprocess.run(
        [sys.executable, "-m", "contact_center.tools.bank_issuer", "--id", "C", "--name", "K"],
        env=cli_env(), cwd=ROOT, capture_output=True, text=True, timeout=30,
    )
    assert missing.returncode == 2 and "CC_BANK_TOKEN_SECRET" in missing.stderr


# ------------------------------------------------------------------ routed as a VIP


@pytest.fixture
async def bank_server(fast_settings, redis_client) -> AsyncIterator[TestServer]:  # type: ignore[no-untyped-def]
    settings = fast_settings.model_copy(update={"bank_token_secret": SecretStr(SECRET)})
    srv = TestServer(create_app(settings), host="127.0.0.1", port=settings.port)
    await srv.start_server()
    try:
        yield srv
    finally:
        await close_or_dump(srv)


async def test_a_signed_vip_is_routed_as_a_vip(bank_server, advisor_factory):
    base = str(bank_server.make_url(""))
    guest, vip = SignallingClient(base), SignallingClient(base)
    advisor_user = await advisor_factory(display_name="Emma Lau")
    advisor = SignallingClient(base)
    try:
        await guest.as_guest()
        await guest.connect()
        async with vip.http.get(bank_server.make_url("/")) as page:
            csrf = _csrf(await page.text())
        token = issue(SECRET, customer_id="C-88", name="Mei Chan", vip=True, lang="en")
        async with vip.http.post(
            bank_server.make_url(URL), json={"token": token}, headers={"X-CSRF-Token": csrf}
        ) as response:
            assert response.status == 200
        welcome = await vip.connect()
        assert welcome["display_name"] == "Mei Chan" and welcome["user"].startswith("user:")

        # the guest waits first; the VIP, a moment later, is offered first
        first = await guest.request(
            "session.start", channels=["text"], language="en", topic="cards", skip_bot=True
        )
        second = await vip.request(
            "session.start", channels=["text"], language="en", topic="cards", skip_bot=True
        )
        status = await bank_server.app[appkeys.ROUTER].contact_status(second["contact_id"])
        assert status.vip is True
        await advisor.login(advisor_user.username, "correct horse battery")
        await advisor.connect()
        await advisor.request("agent.status", status="available")
        offer = await advisor.wait_for("offer")
        assert offer["contact_id"] == second["contact_id"] != first["contact_id"]
        assert offer["facts"]["vip"] is True and offer["facts"]["customer_name"] == "Mei Chan"
        assert offer["facts"]["guest"] is False
    finally:
        for c in (guest, vip, advisor):
            await c.close()
