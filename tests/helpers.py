"""Small helpers shared by tests: accounts, sign-in, a server process, polling, SDP exchange."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import aiohttp

from contact_center.config import Settings
from contact_center.db.engine import create_engine, session_factory, transaction
from contact_center.db.models import Role, User
from contact_center.identity.users import UserCreate, create_user
from contact_center.media.call import CallMedia, Party
from contact_center.tools.synthetic import SyntheticPeer

PASSWORD = "correct horse battery"
ROOT = Path(__file__).resolve().parent.parent


async def make_user(settings: Settings, role: Role | str, **fields: object) -> User:
    """Create an account with a unique username in the test database."""
    fields.setdefault("username", f"{Role(role).value}-{uuid.uuid4().hex[:8]}")
    data = UserCreate(password=PASSWORD, role=Role(role), **fields)  # type: ignore[arg-type]
    engine = create_engine(settings.database_url)
    try:
        async with transaction(session_factory(engine)) as session:
            return await create_user(session, data=data)
    finally:
        await engine.dispose()


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


async def login(client, username: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    """Sign in through the real form (GET for the CSRF token, then POST)."""
    page = await client.get("/login")
    token = csrf_from(await page.text())
    return await client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token},
        allow_redirects=False,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(count: int, tries: int = 50) -> int:
    """The first of ``count`` consecutive free loopback ports (``serve --workers`` takes the
    port and one more per worker)."""
    for _ in range(tries):
        first = free_port()
        sockets: list[socket.socket] = []
        try:
            for port in range(first, first + count):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
        return first
    raise RuntimeError(f"no {count} consecutive free ports on 127.0.0.1")


def cli_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CC_") or k.startswith("CC_TEST_")}
    env.update(overrides)
    return env


def run_cli(*args: str, env: dict[str, str], input: str | None = None, timeout: float = 60):
    return subprocess.run(
        [sys.executable, "-m", "contact_center", *args],
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def wait_ready(url: str, timeout: float = 30, process: subprocess.Popen | None = None) -> None:
    import asyncio

    async def poll() -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if process is not None and process.poll() is not None:
                    raise AssertionError(f"server exited with {process.returncode}")
                try:
                    async with http.get(url + "/readyz") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"{url} not ready within {timeout} s")

    asyncio.run(poll())


async def wait_for(predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    """Poll ``predicate`` every 20 ms until true; fail the test after ``seconds``."""
    async with asyncio.timeout(seconds):
        # Polling on purpose: the conditions are plain counters updated by media tasks.
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def negotiate(call: CallMedia, party: Party, peer: SyntheticPeer) -> None:
    """Offer from ``peer``, answer through ``call`` as ``party``, apply the answer."""
    await peer.accept_answer(await call.answer(party, await peer.offer()))


def spawn_server(env: dict[str, str], *, workers: int = 1) -> subprocess.Popen[str]:
    """A real server process (``contact-center serve``) on ``env``; SIGKILL it to crash it."""
    return subprocess.Popen(
        [sys.executable, "-m", "contact_center", "serve", "--workers", str(workers)],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )


async def until_ready(url: str, process: subprocess.Popen[str], timeout: float = 30) -> None:
    """Poll ``/readyz`` from a running event loop (``wait_ready`` is for sync tests)."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"server exited with {process.returncode}: "
                                     f"{process.stderr.read() if process.stderr else ''}")
            try:
                async with http.get(url + "/readyz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} not ready within {timeout} s")


async def eventually(check: Callable[[], object], timeout: float = 20, every: float = 0.1) -> float:
    """Await ``check()`` (sync or async) until truthy; returns the seconds it took."""
    started = time.monotonic()
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s: {check}")
        await asyncio.sleep(every)
