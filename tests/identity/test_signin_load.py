"""Issue 13, defect 1: password hashing must not block the event loop, is bounded, and one
address cannot spread guesses over many accounts."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time

from contact_center import appkeys
from contact_center.db.models import Role
from contact_center.server.app import create_app
from tests.helpers import csrf_from, login, make_user


class SpyHasher:
    """Stands in for argon2: records the thread of each check and how many overlap."""

    def __init__(self, seconds: float = 0.15) -> None:
        self.seconds = seconds
        self.threads: set[int] = set()
        self.calls = 0
        self.running = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def verify(self, password_hash: str, password: str) -> bool:
        with self._lock:
            self.calls += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            self.threads.add(threading.get_ident())
        try:
            time.sleep(self.seconds)  # as argon2 does: CPU-bound, no await
            return False
        finally:
            with self._lock:
                self.running -= 1


async def _failed_sign_in(client, username: str, token: str) -> int:
    response = await client.post(
        "/login",
        data={"username": username, "password": "wrong password", "csrf_token": token},
        allow_redirects=False,
    )
    return response.status


async def test_password_checks_run_in_worker_threads_and_are_bounded(client, settings):
    users = [await make_user(settings, Role.ADVISOR) for _ in range(6)]
    spy = SpyHasher()
    client.app[appkeys.PASSWORDS].hasher = spy
    token = csrf_from(await (await client.get("/login")).text())
    statuses = await asyncio.gather(*(_failed_sign_in(client, u.username, token) for u in users))
    assert statuses == [401] * 6
    assert spy.calls == 6
    assert threading.get_ident() not in spy.threads, "argon2 ran on the event loop's thread"
    assert spy.most_at_once == settings.password_hash_concurrency


async def test_healthz_stays_responsive_during_a_burst_of_failed_sign_ins(client, settings):
    """Real argon2: /healthz while 12 failed sign-ins are checked, against a baseline."""
    users = [await make_user(settings, Role.ADVISOR) for _ in range(6)]
    token = csrf_from(await (await client.get("/login")).text())

    async def probe() -> float:
        started = time.perf_counter()
        assert (await client.get("/healthz")).status == 200
        await asyncio.sleep(0.01)
        return (time.perf_counter() - started) * 1000

    baseline = [await probe() for _ in range(30)]
    burst = asyncio.gather(
        *(_failed_sign_in(client, users[i % 6].username, token) for i in range(12))
    )
    during = []
    while not burst.done():
        during.append(await probe())
    assert set(await burst) == {401}
    assert len(during) >= 5

    def p90(values: list[float]) -> float:
        return statistics.quantiles(values, n=10)[-1]

    base, loaded = p90(baseline), p90(during)
    print(f"/healthz p90 {base:.1f} ms idle, {loaded:.1f} ms during the burst "
          f"(x{loaded / base:.1f}, {len(during)} probes)")
    # Each check is ~100-200 ms of CPU: on the loop, most probes would wait for one.
    assert loaded < 10 * base, (base, loaded)


async def test_one_address_cannot_spread_guesses_over_many_accounts(
    aiohttp_client, settings, redis_client
):
    strict = settings.model_copy(update={"login_address_max_failures": 8})
    client = await aiohttp_client(create_app(strict))
    victim = await make_user(strict, Role.ADVISOR)
    token = csrf_from(await (await client.get("/login")).text())
    for i in range(8):
        assert await _failed_sign_in(client, f"account-{i}", token) == 401
    spy = SpyHasher(seconds=0)
    client.app[appkeys.PASSWORDS].hasher = spy
    # a ninth account, even with its right password: refused before any hashing
    blocked = await login(client, victim.username)
    assert blocked.status == 429
    assert int(blocked.headers["Retry-After"]) >= 1
    assert "Too many failed sign-ins from your network" in await blocked.text()
    assert spy.calls == 0


async def _fail_from(client, token: str, forwarded_for: str) -> int:
    response = await client.post(
        "/login",
        data={"username": "someone", "password": "wrong password", "csrf_token": token},
        headers={"X-Forwarded-For": forwarded_for},
        allow_redirects=False,
    )
    return response.status


async def test_forwarded_for_counts_only_behind_a_trusted_proxy(
    aiohttp_client, settings, redis_client
):
    limits = {"login_address_max_failures": 2, "login_max_failures": 100}
    direct = await aiohttp_client(create_app(settings.model_copy(update=limits)))
    token = csrf_from(await (await direct.get("/login")).text())
    # Not behind a proxy we trust: a made-up header does not buy fresh addresses.
    assert [await _fail_from(direct, token, f"198.51.100.{i}") for i in range(3)] == [401, 401, 429]

    proxied = settings.model_copy(update={**limits, "trusted_proxies": ["127.0.0.0/8"]})
    behind = await aiohttp_client(create_app(proxied))
    await redis_client.flushdb()
    token = csrf_from(await (await behind.get("/login")).text())
    # The client is the rightmost address that is not one of our proxies.
    assert await _fail_from(behind, token, "203.0.113.9, 127.0.0.2") == 401
    assert await _fail_from(behind, token, "10.9.9.9, 203.0.113.9") == 401
    assert await _fail_from(behind, token, "203.0.113.9") == 429
    assert await _fail_from(behind, token, "198.51.100.1") == 401
    # IPv6 addresses of one /64 are one unit
    assert await _fail_from(behind, token, "2001:db8:1:2::1") == 401
    assert await _fail_from(behind, token, "2001:db8:1:2:ffff::2") == 401
    assert await _fail_from(behind, token, "2001:db8:1:2::3") == 429
