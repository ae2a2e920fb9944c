"""Shared fixtures: a real Redis (the machine's when CC_TEST_REDIS_URL is set, else an embedded
Valkey; a 3-master Redis Cluster for the tests parametrised with ``on_cluster``), a real database (PostgreSQL when CC_TEST_DATABASE_URL is set, else SQLite), a real
server with signalling clients and advisors, loopback-only ICE for aiortc peers, and one real
Rasa server for the whole session (every directory's bot tests share it). Plain helpers (accounts, sign-in, polling, SDP exchange) are in ``tests/helpers.py``."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer

from chatbot import env
from chatbot.services import RasaServices
from contact_center.config import Settings
from contact_center.db.models import Role
from contact_center.media.ice import IceSettings
from contact_center.server.valkey import EmbeddedValkey
from contact_center.tools.wsclient import SignallingClient
from tests.helpers import PASSWORD, free_port, make_user
from tests.leftover_tasks import task_stacks, tasks_end_with_the_test  # noqa: F401  (autouse)
from tests.postgres_server import PostgresProcess
from tests.redis_servers import ClusterGroup, RedisTarget

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real Redis for this test session."""
    url = os.environ.get("CC_TEST_REDIS_URL")
    if url:
        yield url
        return
    server = EmbeddedValkey(tmp_path_factory.mktemp("valkey"), persist=False)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterGroup]:
    """A Redis Cluster of three masters on loopback, started when a test first asks for it."""
    group = ClusterGroup(tmp_path_factory.mktemp("cluster")).start()
    try:
        yield group
    finally:
        group.stop()


@pytest.fixture
def on_cluster() -> bool:
    """Whether this test's Redis is the Redis Cluster: no, unless the test is parametrised
    with ``tests.redis_servers.ON_CLUSTER_TOO`` or a conftest parametrises this fixture."""
    return False


@pytest.fixture
def redis_target(request: pytest.FixtureRequest, on_cluster: bool, redis_url: str) -> RedisTarget:
    """The Redis of this test: the session's server, or the session's cluster."""
    if on_cluster:
        return RedisTarget(cluster=request.getfixturevalue("redis_cluster").nodes)
    return RedisTarget(url=redis_url)


@pytest.fixture
async def redis_client(redis_target: RedisTarget) -> AsyncIterator[aioredis.Redis]:
    """A client on a Redis database (every node of a cluster) flushed before and after the
    test."""
    client = redis_target.client()
    await client.flushdb()
    try:
        yield client
    finally:
        await client.flushdb()
        await client.aclose()


def _create_pg_database(base_url: str) -> tuple[str, str]:
    """Create a database of its own for this test session next to ``base_url``'s."""
    import asyncio
    import uuid

    import asyncpg

    name = f"cc_test_{uuid.uuid4().hex[:12]}"
    plain = base_url.replace("postgresql+asyncpg://", "postgresql://")

    async def create() -> None:
        conn = await asyncpg.connect(plain)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    return name, base_url.rsplit("/", 1)[0] + f"/{name}"


def _drop_pg_database(base_url: str, name: str) -> None:
    import asyncio

    import asyncpg

    async def drop() -> None:
        conn = await asyncpg.connect(base_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())


@pytest.fixture(scope="session")
def empty_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A new, empty database for this test session (PostgreSQL when CC_TEST_DATABASE_URL is set)."""
    base = os.environ.get("CC_TEST_DATABASE_URL")
    if not base:
        yield f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
        return
    name, url = _create_pg_database(base)
    try:
        yield url
    finally:
        _drop_pg_database(base, name)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database shared by the test session."""
    from contact_center.db import engine as db

    base = os.environ.get("CC_TEST_DATABASE_URL")
    if not base:
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'app.db'}"
        db.upgrade(url)
        yield url
        return
    name, url = _create_pg_database(base)
    db.upgrade(url)
    try:
        yield url
    finally:
        _drop_pg_database(base, name)


@pytest.fixture
def settings(
    tmp_path: Path, database_url: str, redis_target: RedisTarget, monkeypatch: pytest.MonkeyPatch
):
    """Settings for an app on the test database and Redis, with its own data directory."""
    from contact_center.config import load_settings

    for key in list(os.environ):
        if key.startswith("CC_") and not key.startswith("CC_TEST_"):
            monkeypatch.delenv(key)
    return load_settings(
        var_dir=tmp_path / "var",
        database_url=database_url,
        **redis_target.settings(),
        secret_key="test-secret-" + "x" * 40,
        log_json=False,
        bot_enabled=False,  # tests that want the bot turn it on (tests/chatbot)
    )


@pytest.fixture
async def client(aiohttp_client, settings, redis_client):  # type: ignore[no-untyped-def]
    """A test client on the real app (real DB, real Redis flushed around the test)."""
    from contact_center.server.app import create_app

    return await aiohttp_client(create_app(settings))


@pytest.fixture(scope="session")
def rasa_paths() -> env.RasaPaths:
    """The Rasa env and model, built or trained now if the cache lacks them.

    The first run builds the Rasa env (Python 3.10, about 2 minutes) and trains the model
    (about 40 s) into the cache (chatbot.env); later runs reuse both."""
    try:
        return env.ensure()
    except env.EnvError as exc:
        pytest.fail(f"cannot build the Rasa environment: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def rasa_services(rasa_paths: env.RasaPaths,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[RasaServices]:
    """The Rasa server and action server on free loopback ports, started (~15 s) when a test
    first asks for them and shared by every test of the session after it."""
    assert rasa_paths.env_dir is not None
    services = RasaServices(rasa_paths.env_dir, rasa_paths.model_path,
                            rasa_port=free_port(), actions_port=free_port(),
                            log_dir=tmp_path_factory.mktemp("rasa-logs"))
    services.start()
    try:
        yield services
    finally:
        services.stop()


@pytest.fixture
def own_postgres() -> Iterator[PostgresProcess]:
    """A PostgreSQL of this test's own (skipped without the server binaries), to stop and
    start; never the machine's."""
    pg = PostgresProcess().init()
    pg.start()
    try:
        yield pg
    finally:
        pg.destroy()


@pytest.fixture
async def server_on_own_postgres(
    own_postgres: PostgresProcess, fast_settings: Settings, redis_client
) -> AsyncIterator[tuple[TestServer, Settings]]:  # type: ignore[no-untyped-def]
    """The real app on ``own_postgres`` (migrated), and its settings."""
    from contact_center.db import engine as db
    from contact_center.server.app import create_app

    url = await own_postgres.create_database("cc")
    await asyncio.to_thread(db.upgrade, url)
    settings = fast_settings.model_copy(update={"database_url": url})
    srv = TestServer(create_app(settings), host="127.0.0.1", port=settings.port)
    await srv.start_server()
    try:
        yield srv, settings
    finally:
        await close_or_dump(srv)


@pytest.fixture
def ice() -> IceSettings:
    """Host candidates on 127.0.0.1 only, no STUN or TURN."""
    return IceSettings.loopback()


@pytest.fixture
def fast_settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """Loopback-only media, short grace periods and a generous rate limit, on a port known in
    advance so that the public URL, and with it each offer's ``media_url``, is this server's.
    A test marked ``@pytest.mark.settings(name=value, ...)`` gets those values on top."""
    port = free_port()
    marker = request.node.get_closest_marker("settings")
    return settings.model_copy(
        update={
            "ice_host_addresses": ["127.0.0.1"],
            "customer_grace_s": 1.0,
            "advisor_grace_s": 1.0,
            "ws_rate_per_s": 500.0,
            "ws_burst": 500,
            "port": port,
            "public_base_url": f"http://127.0.0.1:{port}",
            **(marker.kwargs if marker else {}),
        }
    )


@pytest.fixture
async def server(fast_settings: Settings, redis_client) -> AsyncIterator[TestServer]:  # type: ignore[no-untyped-def]
    """The real app on ``fast_settings``' port (real database, real Redis)."""
    from contact_center.server.app import create_app

    srv = TestServer(create_app(fast_settings), host="127.0.0.1", port=fast_settings.port)
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
        print(task_stacks(list(asyncio.all_tasks())), file=sys.stderr)
        raise


@pytest.fixture
async def clients(server: TestServer) -> AsyncIterator[Callable[..., object]]:
    """Connected signalling clients: ``await clients(guest=True)`` or ``clients(username=...)``."""
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
    """``await advisor_factory(**fields)``: an advisor account (English, general and cards)."""

    async def make(**fields: object):  # type: ignore[no-untyped-def]
        fields.setdefault("languages", ["en"])
        fields.setdefault("skills", {"general": 3, "cards": 4})
        return await make_user(fast_settings, Role.ADVISOR, **fields)

    return make
