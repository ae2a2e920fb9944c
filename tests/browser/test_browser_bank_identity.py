"""The bank's app opens the customer page with a signed identity (``/#bank_token=``): the
customer is signed in, in their language, and the advisor sees a VIP by name."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from contact_center.tools.bank_issuer import issue

pytestmark = pytest.mark.browser

SECRET = "bank-shared-secret-" + "b" * 32


@pytest.fixture
def fast_settings(fast_settings):  # type: ignore[no-untyped-def]
    return fast_settings.model_copy(update={"bank_token_secret": SecretStr(SECRET)})


async def test_the_bank_app_signs_a_vip_in_and_the_advisor_sees_it(
    server, clients, advisor_factory, new_page, screenshot
):
    advisor_user = await advisor_factory(display_name="Emma Lau", languages=["en", "yue"])
    advisor = await clients(username=advisor_user.username)
    await advisor.request("agent.status", status="available")

    token = issue(SECRET, customer_id="C-1029", name="陳美玲", vip=True, lang="yue")
    page = await new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    await page.goto(str(server.make_url("/")) + f"#bank_token={token}")
    await page.wait_for_selector(".topbar .who")
    await page.wait_for_function("document.body.dataset.connection === 'open'")
    assert "bank_token" not in page.url  # not left in the address bar or the history
    assert await page.text_content(".topbar .who") == "陳美玲 · 客戶"  # the role in Cantonese
    assert await page.evaluate("document.documentElement.lang") == "zh-Hant-HK"
    assert await page.input_value("#language") == "yue"
    assert await page.locator("#start .badge").is_visible()  # the priority customer badge
    await screenshot(page, "bank-signed-in-phone")

    await page.check("#skip-bot")
    await page.click("#start-form button[type=submit]")
    offer = await advisor.wait_for("offer")
    assert offer["language"] == "yue"
    assert offer["facts"]["vip"] is True and offer["facts"]["customer_name"] == "陳美玲"
    await advisor.request("offer.accept", contact_id=offer["contact_id"])
    await page.wait_for_selector("#state[data-state=connected]")
    assert "Emma Lau" in await page.text_content("#state")
    await screenshot(page, "bank-connected-phone")
    assert new_page.errors == []


async def test_a_used_token_is_refused_and_the_customer_can_go_on_as_a_guest(
    server, new_page, screenshot
):
    token = issue(SECRET, customer_id="C-5", name="Ken", vip=False, lang="en")
    first = await new_page()
    await first.goto(str(server.make_url("/")) + f"#bank_token={token}")
    await first.wait_for_selector(".topbar .who")
    page = await new_page()  # someone else replays the same address
    await page.goto(str(server.make_url("/")) + f"#bank_token={token}")
    error = page.locator("#start-error:not(.hidden)")
    await error.wait_for()
    assert "already used" in await error.text_content()
    assert await page.locator(".topbar .who").count() == 0
    await page.wait_for_function("document.body.dataset.connection === 'open'")
    await screenshot(page, "bank-token-replayed")
    # the refusal is on the console as a failed request, and nothing else
    assert all("401" in e for e in new_page.errors), new_page.errors
