"""Signing in while the database is down, in Chromium: the "try again" page in the app's look,
then, once the database is back, the same form signs in (the app was not restarted)."""

from __future__ import annotations

import asyncio

import pytest

from contact_center.db.models import Role
from tests.helpers import PASSWORD, make_user

pytestmark = [pytest.mark.browser, pytest.mark.slow]


async def test_sign_in_during_a_database_outage_says_try_again_then_works(
    own_postgres, server_on_own_postgres, new_page, screenshot
):
    server, settings = server_on_own_postgres
    user = await make_user(settings, Role.SUPERVISOR)
    page = await new_page()

    async def submit() -> int:
        await page.goto(str(server.make_url("/login")))
        await page.fill("input[name=username]", user.username)
        await page.fill("input[name=password]", PASSWORD)
        async with page.expect_navigation() as navigation:
            await page.click("form button[type=submit]")
        response = await navigation.value
        assert response is not None
        return response.status

    await asyncio.to_thread(own_postgres.stop_immediately)
    assert await submit() == 503
    assert await page.text_content("h1") == "We are busy right now"
    assert "try again" in (await page.text_content(".error-card") or "").lower()
    assert await page.locator(".topbar .brand").is_visible()
    await screenshot(page, "error-503-database-down")

    await asyncio.to_thread(own_postgres.start)
    assert await submit() == 200  # followed the redirect to the supervisor's page
    assert page.url.endswith("/supervisor")
    # Chromium notes the 503 navigation on the console; nothing else may be there
    assert all("Failed to load resource" in e for e in new_page.errors), new_page.errors
