"""The customer page can be installed on a phone: Chromium reads its web app manifest and finds
nothing that stops the installation."""

from __future__ import annotations

import struct

import pytest

pytestmark = pytest.mark.browser


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


async def test_the_customer_page_is_installable(server, new_page, screenshot):
    page = await new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    await page.goto(str(server.make_url("/")))
    await page.wait_for_function("document.body.dataset.connection === 'open'")
    cdp = await page.context.new_cdp_session(page)
    manifest = await cdp.send("Page.getAppManifest")
    assert manifest["url"].endswith("/static/manifest.webmanifest")
    assert manifest["errors"] == []
    installability = await cdp.send("Page.getInstallabilityErrors")
    # Playwright's contexts are incognito ones, where nothing installs: any other reason is ours
    errors = [e["errorId"] for e in installability["installabilityErrors"]]
    assert [e for e in errors if e != "in-incognito"] == []

    response = await page.request.get(str(server.make_url("/static/manifest.webmanifest")))
    assert response.headers["content-type"].startswith("application/manifest+json")
    data = await response.json()
    assert data["start_url"] == "/" and data["display"] == "standalone"
    for icon in data["icons"]:
        got = await page.request.get(str(server.make_url(icon["src"])))
        assert got.ok and got.headers["content-type"].startswith(icon["type"]), icon
        if icon["type"] == "image/png":
            width, height = _png_size(await got.body())
            assert f"{width}x{height}" == icon["sizes"], icon
    assert await page.get_attribute("meta[name=theme-color]", "content") == data["theme_color"]
    assert new_page.errors == []
