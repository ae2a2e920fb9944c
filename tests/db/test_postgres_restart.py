"""PostgreSQL stopped under load and started again: requests fail clearly meanwhile, the app
comes back by itself, and no acknowledged chat line is lost (a PostgreSQL of the test's own)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestServer

from contact_center.config import Settings
from contact_center.db import engine as db
from contact_center.db.models import Role
from contact_center.tools.wsclient import RequestFailed, SignallingClient
from contact_center.ws.endpoint import WS_TRY_AGAIN_LATER
from tests.helpers import PASSWORD, csrf_from, login, make_user
from tests.postgres_server import PostgresProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

CUSTOMERS = 6
#: how long PostgreSQL stays down
OUTAGE_S = 4.0
#: a request that gets no answer within this is a hang
ANSWER_S = 15.0


@dataclass
class Load:
    """Customers sending chat lines without pause; what each answer was, by phase."""

    phase: str = "before"
    acked: list[tuple[str, int, str]] = field(default_factory=list)
    answers: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: seconds from ``pg_ctl start`` to the first line acknowledged after it
    first_ack_after_restart: float | None = None
    restarted_at: float = 0.0
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def customer(self, client: SignallingClient, contact_id: str, n: int) -> None:
        for i in itertools.count():
            if self.stop.is_set():
                return
            text = f"line {n}.{i}"
            phase = self.phase
            try:
                reply = await client.request("chat.send", timeout=ANSWER_S, contact_id=contact_id, text=text)
            except RequestFailed as exc:
                self.answers[(phase, exc.code)] += 1
                await asyncio.sleep(0.1)
                continue
            except TimeoutError:
                self.answers[(phase, "no answer")] += 1
                continue
            self.acked.append((contact_id, int(reply["seq"]), text))
            self.answers[(phase, "ok")] += 1
            if phase in ("restarting", "after") and self.first_ack_after_restart is None:
                self.first_ack_after_restart = time.monotonic() - self.restarted_at
            await asyncio.sleep(0.02)


async def _started_customer(server: TestServer) -> tuple[SignallingClient, str]:
    client = SignallingClient(str(server.make_url("")))
    await client.as_guest()
    await client.connect()
    started = await client.request("session.start", channels=["text"], language="en", skip_bot=True)
    return client, started["contact_id"]


async def _get(http: aiohttp.ClientSession, server: TestServer, path: str):  # type: ignore[no-untyped-def]
    """(status, JSON body) of a program's GET; one that gets no answer in ANSWER_S fails."""
    async with asyncio.timeout(ANSWER_S):
        async with http.get(server.make_url(path), headers={"Accept": "application/json"}) as response:
            return response.status, await response.json()


class Browser:
    """A browser session: the app's sign-in form and pages."""

    def __init__(self, server: TestServer) -> None:
        self.server = server
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))  # an IP host

    def get(self, path: str, **kwargs):  # type: ignore[no-untyped-def]
        return self.http.get(self.server.make_url(path), **kwargs)

    def post(self, path: str, **kwargs):  # type: ignore[no-untyped-def]
        return self.http.post(self.server.make_url(path), **kwargs)


async def test_requests_fail_clearly_while_postgres_is_down_and_the_app_recovers(
    own_postgres: PostgresProcess, server_on_own_postgres: tuple[TestServer, Settings]
) -> None:
    server, settings = server_on_own_postgres
    admin = await make_user(settings, Role.ADMIN)
    admin_http, visitor = Browser(server), Browser(server)
    assert (await login(admin_http, admin.username)).status == 303
    load = Load()
    customers = [await _started_customer(server) for _ in range(CUSTOMERS)]
    tasks = [asyncio.create_task(load.customer(c, cid, n)) for n, (c, cid) in enumerate(customers)]
    late: SignallingClient | None = None
    try:
        await asyncio.sleep(1.5)
        assert load.answers[("before", "ok")] > 20, load.answers
        assert (await _get(admin_http.http, server, "/api/admin/users"))[0] == 200

        # --- down ------------------------------------------------------------------------------
        await asyncio.to_thread(own_postgres.stop_immediately)
        load.phase = "down"
        await asyncio.sleep(1.0)  # the pool's connections are found dead by now
        status, ready = await _get(visitor.http, server, "/readyz")
        assert status == 503 and ready["database"].startswith("error"), ready
        # a program gets a 503 that says what to do, a person the "try again" page
        status, body = await _get(admin_http.http, server, "/api/admin/users")
        assert (status, body["error"]) == (503, "unavailable"), body
        page = await (await visitor.get("/login")).text()
        async with asyncio.timeout(ANSWER_S):
            signing_in = await visitor.post("/login", allow_redirects=False, data={
                "username": admin.username, "password": PASSWORD, "csrf_token": csrf_from(page),
            })
        assert signing_in.status == 503 and "try again" in (await signing_in.text()).lower()
        assert signing_in.headers["Retry-After"]
        # a customer arriving now is told to come back, and the socket closes "try again later"
        late = SignallingClient(str(server.make_url("")))
        await late.as_guest()
        await late.connect()
        refusal = await late.wait_for("error", timeout=ANSWER_S)
        assert refusal["code"] == "unavailable", refusal
        async with asyncio.timeout(ANSWER_S):
            while late.ws is not None and not late.ws.closed:  # noqa: ASYNC110 - aiohttp's flag
                await asyncio.sleep(0.05)
        assert late.ws is not None and late.ws.close_code == WS_TRY_AGAIN_LATER
        await asyncio.sleep(max(0.0, OUTAGE_S - 1.0))

        # --- up again, without touching the app ------------------------------------------------
        load.restarted_at = time.monotonic()
        load.phase = "restarting"  # pg_ctl start: some requests may be served before it returns
        await asyncio.to_thread(own_postgres.start)
        pg_start_s = time.monotonic() - load.restarted_at
        load.phase = "after"
        async with asyncio.timeout(30):
            while load.first_ack_after_restart is None:  # noqa: ASYNC110 - set by the load
                await asyncio.sleep(0.05)
        await late.connect()  # as the pages do after a 1013: connect again
        again = await late.request("session.start", timeout=ANSWER_S, channels=["text"],
                                   language="en", skip_bot=True)
        assert again["contact_id"]
        assert (await _get(visitor.http, server, "/readyz"))[0] == 200
        assert (await _get(admin_http.http, server, "/api/admin/users"))[0] == 200
        assert (await login(visitor, admin.username)).status == 303
        await asyncio.sleep(1.0)
    finally:
        load.stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for client, _ in customers:
            await client.close()
        if late is not None:
            await late.close()
        await admin_http.http.close()
        await visitor.http.close()

    print(f"answers: {dict(load.answers)}; pg_ctl start took {pg_start_s:.2f} s, the first "
          f"line was acknowledged {load.first_ack_after_restart:.2f} s after it was called")
    down = {code: n for (phase, code), n in load.answers.items() if phase == "down"}
    assert down.get("unavailable", 0) > 0, load.answers  # the outage was felt, and said so
    assert set(down) == {"unavailable"}, load.answers  # no internal, no hang
    restarting = {code for (phase, code), n in load.answers.items() if phase == "restarting"}
    assert restarting <= {"unavailable", "ok"}, load.answers
    assert load.answers[("after", "ok")] > 20, load.answers

    # --- every acknowledged line is stored, once ------------------------------------------------
    engine = db.create_engine(settings.database_url)
    try:
        async with engine.connect() as connection:
            rows = (await connection.execute(sa.text(
                "SELECT contact_id, seq, text FROM chat_messages WHERE contact_id = ANY(:ids)"
            ), {"ids": [cid for _, cid in customers]})).all()
    finally:
        await engine.dispose()
    stored = Counter((r.contact_id, r.seq, r.text) for r in rows)
    missing = [line for line in load.acked if stored[line] == 0]
    assert missing == [], missing[:5]
    assert max(stored.values()) == 1
