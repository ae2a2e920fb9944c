"""The error pages in Chromium: the app's look, in the page's language, on a desktop and a phone."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


async def test_not_found_and_forbidden_pages_look_like_the_app(server, new_page, screenshot):
    page = await new_page()
    response = await page.goto(str(server.make_url("/no/such/page")))
    assert response is not None and response.status == 404
    assert await page.text_content("h1") == "Page not found"
    assert await page.locator(".topbar .brand").is_visible()
    home = page.locator(".error-card a.button")
    assert await home.get_attribute("href") == "/"
    await screenshot(page, "error-404-desktop")

    await page.goto(str(server.make_url("/")))  # a guest customer now
    response = await page.goto(str(server.make_url("/advisor")))
    assert response is not None and response.status == 403
    assert await page.text_content("h1") == "You cannot open this page"
    assert "for advisor accounts" in await page.text_content(".error-detail")
    await screenshot(page, "error-403-desktop")

    response = await page.goto(str(server.make_url("/no/such/page?lang=zh-Hant")))
    assert response is not None and response.status == 404
    await page.wait_for_function("document.documentElement.lang === 'zh-Hant'")
    assert await page.text_content("h1") == "找不到頁面"
    await screenshot(page, "error-404-zh-Hant")

    phone = await new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    await phone.goto(str(server.make_url("/static/missing.css")))
    assert await phone.text_content("h1") == "Page not found"
    width = await phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390  # nothing runs off the side
    await screenshot(phone, "error-404-phone")
    # Chromium notes each 4xx navigation on the console; nothing else may be there
    assert all("Failed to load resource" in e for e in new_page.errors), new_page.errors
