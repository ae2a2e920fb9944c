"""Fixtures for browser tests: headless Chromium (the server and clients are tests/conftest.py's).

Playwright's async API runs on the test's event loop, next to the aiohttp test server, so one
loop drives the browser, the server and the Python signalling clients.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Callable
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
