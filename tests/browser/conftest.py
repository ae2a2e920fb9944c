"""Fixtures for browser tests: a real server (the session tests' fixtures) and headless Chromium.

Playwright's async API runs on the test's event loop, next to the aiohttp test server, so one
loop drives the browser, the server and the Python signalling clients.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from contact_center.app import create_app
from contact_center.config import Settings
from tests.helpers import free_port

# The client factories are those of the session tests: one definition.
from tests.sessions.conftest import advisor_factory, clients  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("CC_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


@pytest.fixture
def fast_settings(settings: Settings) -> Settings:
    """As the session tests' (loopback media, short grace), on a port known in advance so that
    the public URL, and with it each offer's ``media_url``, is this server's own."""
    port = free_port()
    return settings.model_copy(
        update={
            "ice_host_addresses": ["127.0.0.1"],
            "customer_grace_s": 1.0,
            "advisor_grace_s": 1.0,
            "port": port,
            "public_base_url": f"http://127.0.0.1:{port}",
        }
    )


@pytest.fixture
async def server(fast_settings: Settings, redis_client) -> AsyncIterator[TestServer]:  # type: ignore[no-untyped-def]
    srv = TestServer(create_app(fast_settings), host="127.0.0.1", port=fast_settings.port)
    await srv.start_server()
    try:
        yield srv
    finally:
        await srv.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists():
        skip = pytest.mark.skip(reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)")
        for item in items:
            if "browser" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            await chromium.close()


class PageErrors(list[str]):
    """Uncaught errors and console errors of the pages of one test."""

    def watch(self, page) -> None:  # type: ignore[no-untyped-def]
        page.on("pageerror", lambda exc: self.append(f"pageerror: {exc}"))
        page.on("console", self._console)

    def _console(self, msg) -> None:  # type: ignore[no-untyped-def]
        url = (msg.location or {}).get("url", "")
        # base.html has no <link rel=icon>: Chromium's own /favicon.ico probe is not ours
        if msg.type == "error" and not url.endswith("/favicon.ico"):
            self.append(f"console.{msg.type}: {msg.text} ({url})")


@pytest.fixture
async def new_page(browser) -> AsyncIterator[Callable[..., object]]:  # type: ignore[no-untyped-def]
    """Pages in contexts of their own (separate cookies), with their errors collected."""
    contexts = []
    errors = PageErrors()

    async def make(**context_options: object):  # type: ignore[no-untyped-def]
        context_options.setdefault("viewport", {"width": 1100, "height": 900})
        context = await browser.new_context(**context_options)
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = await context.new_page()
        errors.watch(page)
        return page

    make.errors = errors  # type: ignore[attr-defined]
    yield make
    for context in contexts:
        await context.close()


@pytest.fixture
def screenshot() -> Callable[..., object]:
    """Save a full-page screenshot under test-artifacts/ (gitignored) for a human to look at."""

    async def shoot(page, name: str) -> Path:  # type: ignore[no-untyped-def]
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        return path

    return shoot
