"""Fixtures for browser tests: headless Chromium (the server and clients are tests/conftest.py's).

Playwright's async API runs on the test's event loop, next to the aiohttp test server, so one
loop drives the browser, the server and the Python signalling clients. Chromium itself is
launched once per session (by Playwright, with its usual switches, on a thread and loop of its
own) and each test connects to it over CDP, in contexts of its own (separate cookies, storage and
cache): a launch and its first page cost about a second, 51 times over.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists():
        skip = pytest.mark.skip(reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)")
        for item in items:
            if "browser" in item.keywords:
                item.add_marker(skip)


class SharedChromium:
    """Chromium launched by Playwright and kept running on a thread with its own event loop
    (Playwright's objects belong to the loop that made them; each test has a loop of its own),
    with a DevTools port that the tests' Playwright connects to."""

    def __init__(self) -> None:
        from tests.helpers import free_port

        self.endpoint = f"http://127.0.0.1:{free_port()}"
        self._launched: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._run(),),
                                        name="chromium", daemon=True)

    def start(self) -> SharedChromium:
        self._thread.start()
        self._launched.result(timeout=60)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)

    async def _run(self) -> None:
        from playwright.async_api import async_playwright

        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        try:
            async with async_playwright() as pw:
                port = self.endpoint.rsplit(":", 1)[1]
                chromium = await pw.chromium.launch(
                    executable_path=CHROMIUM, headless=True,
                    args=[*CHROMIUM_ARGS, f"--remote-debugging-port={port}"],
                )
                self._launched.set_result(None)
                await self._stop.wait()
                await chromium.close()
        except BaseException as exc:
            if not self._launched.done():
                self._launched.set_exception(exc)
            raise


@pytest.fixture(scope="session")
def shared_chromium() -> Iterator[SharedChromium]:
    chromium = SharedChromium().start()
    try:
        yield chromium
    finally:
        chromium.stop()


@pytest.fixture
async def browser(shared_chromium: SharedChromium) -> AsyncIterator[object]:
    """The session's Chromium, through a Playwright of this test's loop; the contexts a test
    makes are closed after it, the browser goes on."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.connect_over_cdp(shared_chromium.endpoint)
        try:
            yield chromium
        finally:
            await chromium.close()  # closes this connection's contexts and disconnects


class PageErrors(list[str]):
    """Uncaught errors and console errors of the pages of one test."""

    def watch(self, page) -> None:  # type: ignore[no-untyped-def]
        page.on("pageerror", lambda exc: self.append(f"pageerror: {exc}"))
        page.on("console", self._console)

    def _console(self, msg) -> None:  # type: ignore[no-untyped-def]
        url = (msg.location or {}).get("url", "")
        # Chromium may probe /favicon.ico whatever the page links: that probe is not ours
        if msg.type == "error" and not url.endswith("/favicon.ico"):
            self.append(f"console.{msg.type}: {msg.text} ({url})")


@pytest.fixture
async def new_page(browser) -> AsyncIterator[Callable[..., object]]:  # type: ignore[no-untyped-def]
    """Pages in contexts of their own (separate cookies), with their errors collected."""
    contexts = []
    errors = PageErrors()

    async def make(**context_options: object):  # type: ignore[no-untyped-def]
        context_options.setdefault("viewport", {"width": 1100, "height": 900})
        # Playwright's wait_for_function evaluates strings, which the pages' CSP forbids (as it
        # should); test_browser_csp.py opens every page with the policy enforced.
        context_options.setdefault("bypass_csp", True)
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
    """Save a full-page screenshot under tests/artifacts/ (gitignored) for a human to look at."""

    async def shoot(page, name: str) -> Path:  # type: ignore[no-untyped-def]
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        return path

    return shoot
