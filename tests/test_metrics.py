"""``/metrics``: who may scrape it, that every documented series is there, and that activity
moves them (values compared before and after: the instruments live as long as the process)."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from contact_center import appkeys, metrics
from contact_center.db.models import Role
from contact_center.server.app import create_app
from contact_center.tools.wsclient import RequestFailed
from contact_center.views import metrics as metrics_view
from recordings.manifest import MANIFEST
from tests.helpers import make_user

#: Every series the README documents (counters without their _total).
DOCUMENTED = {
    "cc_contacts", "cc_queue_waiting", "cc_queue_longest_wait_seconds", "cc_advisors",
    "cc_offers", "cc_router_events", "cc_routing_decision_seconds", "cc_ws_connections",
    "cc_ws_frames", "cc_ws_errors", "cc_media_calls", "cc_relay_frames_dropped",
    "cc_recording_failures", "cc_recordings_unsealed", "cc_recordings_unsealed_oldest_seconds",
    "cc_bot_turns", "cc_rasa_request_seconds", "cc_signin_failures", "cc_http_requests",
    "cc_http_request_seconds", "cc_up", "cc_metrics_part_ok",
}


def parse(text: str) -> dict[str, list[Any]]:
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def value(text: str, sample: str, **labels: str) -> float:
    """The sum of the samples named ``sample`` whose labels include ``labels``."""
    total = 0.0
    for samples in parse(text).values():
        for s in samples:
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


async def scrape(url: str, **headers: str) -> str:
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers=headers) as response:
            assert response.status == 200, await response.text()
            assert response.headers["Content-Type"].startswith("text/plain; version=")
            return await response.text()


async def test_without_a_token_only_this_machine_may_scrape(aiohttp_client, settings, redis_client):
    local = await aiohttp_client(create_app(settings))
    assert (await local.get("/metrics")).status == 200
    proxied = settings.model_copy(update={"trusted_proxies": ["127.0.0.1"]})
    remote = await aiohttp_client(create_app(proxied))
    response = await remote.get("/metrics", headers={"X-Forwarded-For": "203.0.113.4"})
    assert response.status == 403
    assert "CC_METRICS_TOKEN" in await response.text()


async def test_with_a_token_it_takes_the_bearer_token(aiohttp_client, settings, redis_client):
    from pydantic import SecretStr

    secured = settings.model_copy(update={"metrics_token": SecretStr("s3cret-metrics-token")})
    client = await aiohttp_client(create_app(secured))
    missing = await client.get("/metrics")
    assert missing.status == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
    assert (await client.get("/metrics", headers={"Authorization": "Bearer nope"})).status == 401
    ok = await client.get("/metrics", headers={"Authorization": "Bearer s3cret-metrics-token"})
    assert ok.status == 200


async def test_every_documented_series_is_exposed(client):
    text = await (await client.get("/metrics")).text()
    names = set(parse(text))
    assert names >= DOCUMENTED, DOCUMENTED - names
    assert value(text, "cc_up", service="redis") == 1
    assert value(text, "cc_up", service="database") == 1
    assert value(text, "cc_metrics_part_ok") == 3


@pytest.fixture
def quick_sampling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics_view, "SAMPLE_S", 0.1)


async def _until(predicate, seconds: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(seconds):
        while not await predicate():
            await asyncio.sleep(0.1)


async def test_a_contact_from_queue_to_advisor_moves_the_numbers(
    quick_sampling, server, clients, fast_settings
):
    url = str(server.make_url("/metrics"))
    before = await scrape(url)
    advisor = await make_user(fast_settings, Role.ADVISOR, languages=["en"], skills={"general": 3})

    # a failed sign-in
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        page = await (await http.get(server.make_url("/login"))).text()
        token = page.split('name="csrf_token" value="')[1].split('"')[0]
        await http.post(
            server.make_url("/login"),
            data={"username": advisor.username, "password": "not it!", "csrf_token": token},
        )
    # a guest waits: no advisor is available
    customer = await clients(guest=True)
    contact_id = (
        await customer.request("session.start", channels=["text"], language="en", skip_bot=True)
    )["contact_id"]
    await customer.send_raw("{bad")
    await asyncio.sleep(0.3)
    waiting = await scrape(url)
    assert value(waiting, "cc_signin_failures_total", reason="wrong") == value(
        before, "cc_signin_failures_total", reason="wrong"
    ) + 1
    assert value(waiting, "cc_contacts", state="queued") >= 1
    assert value(waiting, "cc_queue_waiting", language="en", channel="text") == 1
    assert value(waiting, "cc_queue_longest_wait_seconds", language="en", channel="text") > 0.2
    assert value(waiting, "cc_ws_errors_total", code="bad_json") > value(
        before, "cc_ws_errors_total", code="bad_json"
    )
    assert value(waiting, "cc_ws_frames_total", direction="in") >= value(
        before, "cc_ws_frames_total", direction="in"
    ) + 3
    assert value(waiting, "cc_ws_connections") >= 1

    # an advisor comes: the offer is made and accepted
    console = await clients(username=advisor.username)
    await console.request("agent.status", status="available")
    await console.wait_for("offer", contact_id=contact_id)
    await console.request("offer.accept", contact_id=contact_id)

    async def counted() -> bool:
        now = await scrape(url)
        return value(now, "cc_offers_total", outcome="accepted") > value(
            before, "cc_offers_total", outcome="accepted"
        )

    await _until(counted)
    after = await scrape(url)
    for outcome in ("made", "accepted"):
        assert value(after, "cc_offers_total", outcome=outcome) == value(
            before, "cc_offers_total", outcome=outcome
        ) + 1, outcome
    assert value(after, "cc_routing_decision_seconds_count") > value(
        before, "cc_routing_decision_seconds_count"
    )
    assert value(after, "cc_queue_waiting", language="en", channel="text") == 0
    assert value(after, "cc_contacts", state="connected") >= 1
    assert value(after, "cc_advisors", language="en", state="busy") == 1
    assert value(after, "cc_http_requests_total", route="/login", status="401") >= 1

    # an invented contact id is not a client's way to probe the router
    with pytest.raises(RequestFailed):
        await console.request("offer.accept", contact_id="f" * 32)


async def test_unsealed_recordings_and_how_long_they_have_been_quiet(client, settings):
    # the start's sweep seals what no live process claims: these directories come after it
    # (under load it had not looked yet, and claimed and sealed two of them)
    sweeps = [t for t in asyncio.all_tasks() if t.get_name() == "recordings-sweep"]
    if sweeps:
        await asyncio.wait(sweeps, timeout=30)
    root = settings.recordings_dir
    quiet, sealed, empty, live = (root / n for n in ("quiet", "sealed", "empty", "live"))
    for directory in (quiet, sealed, empty, live):
        directory.mkdir(parents=True)
    (quiet / "customer-audio-0.mka").write_bytes(b"x")
    ten_minutes_ago = time.time() - 600
    os.utime(quiet / "customer-audio-0.mka", (ten_minutes_ago, ten_minutes_ago))
    (sealed / "customer-audio-0.mka").write_bytes(b"x")
    (sealed / MANIFEST).write_text("{}")
    (live / "advisor-video-0.mkv").write_bytes(b"x")
    text = await (await client.get("/metrics")).text()
    assert value(text, "cc_recordings_unsealed") == 2
    assert 600 <= value(text, "cc_recordings_unsealed_oldest_seconds") < 660


class _Call:
    def __init__(self) -> None:
        self.dropped = 0
        self.error: str | None = None

    def relay_stats(self) -> dict[str, dict[str, object]]:
        return {"advisor/video": {"frames_dropped": self.dropped}}

    @property
    def recorder(self):  # type: ignore[no-untyped-def]
        call = self

        class Recorder:
            def stats(self) -> dict[str, dict[str, object]]:
                return {"customer-video-0.mkv": {"error": call.error}}

        return Recorder()


class _Hub:
    def __init__(self, calls: dict[str, _Call]) -> None:
        self.calls = calls

    def __len__(self) -> int:
        return len(self.calls)

    def get(self, contact_id: str) -> _Call | None:
        return self.calls.get(contact_id)


async def test_the_sampler_counts_drops_once_and_each_failed_file_once():
    call = _Call()
    app = web.Application()
    app[appkeys.CONNECTIONS] = set()
    app[appkeys.MEDIA] = _Hub({"c1": call})  # type: ignore[assignment]
    sampler = metrics_view.Sampler(app)

    async def ids() -> list[str]:
        return ["c1"]

    sampler.contacts_with_media = ids  # type: ignore[method-assign]
    dropped_before = metrics.RELAY_FRAMES_DROPPED._value.get()
    failed_before = metrics.RECORDING_FAILURES._value.get()
    for dropped, error in [(3, None), (5, "OSError('disk full')"), (5, "OSError('disk full')"), (9, None)]:
        call.dropped, call.error = dropped, error
        await sampler.sample()
    assert metrics.RELAY_FRAMES_DROPPED._value.get() - dropped_before == 9
    assert metrics.RECORDING_FAILURES._value.get() - failed_before == 1
    assert metrics.MEDIA_CALLS._value.get() == 1


async def test_rasa_requests_are_timed_and_webhook_calls_are_bot_turns(aiohttp_server):
    async def webhook(request: web.Request) -> web.Response:
        return web.json_response([{"text": "hello"}])

    async def broken(request: web.Request) -> web.Response:
        return web.json_response({}, status=500)

    fake = web.Application()
    fake.router.add_post("/webhooks/rest/webhook", webhook)
    fake.router.add_post("/model/parse", broken)
    rasa = await aiohttp_server(fake)
    turns_ok = metrics.BOT_TURNS.labels("ok")._value.get()
    timed = metrics.RASA_SECONDS.labels("parse")._sum.get()
    async with aiohttp.ClientSession(trace_configs=[metrics.rasa_trace_config()]) as http:
        for _ in range(2):
            await (await http.post(rasa.make_url("/webhooks/rest/webhook"), json={})).read()
        await (await http.post(rasa.make_url("/model/parse"), json={})).read()
    assert metrics.BOT_TURNS.labels("ok")._value.get() - turns_ok == 2
    assert metrics.RASA_SECONDS.labels("parse")._sum.get() > timed
