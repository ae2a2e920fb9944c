"""The pages render in Chromium (screenshots go to tests/artifacts/ for a human to look at)."""

from __future__ import annotations

import pytest

from contact_center import appkeys
from contact_center.db.models import Role
from tests.browser.helpers import sign_in
from tests.helpers import make_user

pytestmark = pytest.mark.browser


async def test_login_and_customer_pages_render(server, new_page, screenshot):
    page = await new_page()
    await page.goto(str(server.make_url("/login")))
    assert await page.title() == "Sign in · Harbour Bank"
    assert await page.is_visible("input[name=username]")
    assert await page.is_visible("input[name=password]")
    await screenshot(page, "login")

    await page.goto(str(server.make_url("/")))
    await page.wait_for_function("document.body.dataset.connection === 'open'")
    assert await page.is_visible("#start-form")
    assert await page.is_hidden("#conversation")
    assert await page.get_attribute("#media", "data-ice-servers") == "[]"
    assert await page.input_value("#chat-input") == ""
    await screenshot(page, "customer-start")

    await page.select_option("#language", "zh")
    assert await page.text_content("#start h1") == "联系我们"
    assert await page.evaluate("document.documentElement.lang") == "zh-Hans"
    await screenshot(page, "customer-start-zh")

    narrow = await new_page(viewport={"width": 390, "height": 800})
    await narrow.goto(str(server.make_url("/")))
    await screenshot(narrow, "customer-start-phone")
    assert new_page.errors == []


async def test_supervisor_page_without_the_snapshot_endpoint(
    server, fast_settings, new_page, screenshot
):
    supervisor = await make_user(fast_settings, Role.SUPERVISOR)
    page = await new_page()
    await sign_in(page, server, supervisor.username, "/supervisor")
    await page.wait_for_function(
        "document.querySelector('#snapshot-status').textContent !== 'Loading…'"
    )
    status = await page.text_content("#snapshot-status")
    if status == "snapshot unavailable":  # the endpoint is not there (yet)
        assert await page.locator("#queues tbody tr").count() == 0
    else:
        assert status.startswith("Updated"), status
        assert await page.locator("#summary .stat").count() >= 1
    await screenshot(page, "supervisor")
    # a 404 is logged by Chromium as a failed resource load: that one is expected here
    assert [e for e in new_page.errors if "404" not in e] == []


async def test_supervisor_page_renders_a_router_snapshot(
    server, fast_settings, clients, advisor_factory, new_page, screenshot
):
    """The table from a real RouterStore.snapshot() (served here by the test, whatever the app has)."""
    advisor_user = await advisor_factory(languages=["en", "yue"])
    advisor = await clients(username=advisor_user.username)
    await advisor.request("agent.status", status="available")
    waiting = await clients(guest=True)
    await waiting.request("session.start", channels=["text"], language="zh", skip_bot=True)
    snapshot = await server.app[appkeys.ROUTER].snapshot()
    assert snapshot["waiting"] == 1

    supervisor = await make_user(fast_settings, Role.SUPERVISOR)
    page = await new_page()
    await page.route(
        "**/api/supervisor/snapshot",
        lambda route: route.fulfill(json=snapshot),
    )
    await sign_in(page, server, supervisor.username, "/supervisor")
    await page.wait_for_function(
        "document.querySelector('#snapshot-status').textContent.startsWith('Updated')"
    )
    rows = await page.eval_on_selector_all(
        "#queues tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
    )
    by_key = {(r[0], r[1]): r for r in rows}
    zh = by_key[("Mandarin", "general")]
    assert zh[2] == "1" and zh[4] == "none signed in"
    assert await page.locator("#queues tbody tr.alert").count() == 1  # waiting, nobody free
    assert by_key[("Cantonese", "cards")][4] == "1 available"
    assert by_key[("English", "general")][2] == "0"
    assert await page.text_content("#summary .stat:first-child strong") == "1"
    await screenshot(page, "supervisor-snapshot")
    assert new_page.errors == []
