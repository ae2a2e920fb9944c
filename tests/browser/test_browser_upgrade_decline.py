""""Not now" to an upgrade, in two Chromiums: the asker is told at once and can ask again; then
the compliance replay of that contact names the decline, the upgrade, the media states and the
downgrade in words (English and Traditional Chinese), not with the generic wording."""

from __future__ import annotations

import pytest
from playwright.async_api import Page

from contact_center.db.models import Role
from tests.browser.helpers import sign_in, wrap_up
from tests.browser.test_browser_compliance import DESKTOP, REASON, sealed
from tests.helpers import make_user

pytestmark = pytest.mark.browser


async def _entries(page: Page) -> list[str]:
    await page.wait_for_selector("body[data-replay-ready=true]")
    return [" ".join(t.split()) for t in await page.locator("#entries li").all_text_contents()]


async def test_not_now_tells_the_asker_and_the_replay_names_it(
    server, fast_settings, advisor_factory, new_page, screenshot
):
    user = await advisor_factory()
    console = await new_page()
    await sign_in(console, server, user.username, "/advisor")
    await console.wait_for_function("document.body.dataset.connection === 'open'")
    await console.select_option("#status", "available")
    await console.wait_for_selector("#agent-state[data-state=available]")
    customer = await new_page()
    await customer.goto(str(server.make_url("/")))
    await customer.wait_for_function("document.body.dataset.connection === 'open'")
    await customer.check("#skip-bot")
    await customer.click("#start-form button[type=submit]")
    offer = console.locator(".offer")
    await offer.wait_for()
    contact_id = await offer.get_attribute("data-contact-id")
    await offer.locator(".accept").click()
    await customer.wait_for_selector("#state[data-state=connected]")
    panel = console.locator(f".contact[data-contact-id='{contact_id}']")
    customer_bar, advisor_bar = customer.locator(".call-controls"), panel.locator(".call-controls")

    # the customer asks for a voice call; the advisor says not now; the customer is told at once
    await customer_bar.get_by_role("button", name="Voice call").click()
    await customer_bar.locator(".cc-ask", has_text="waiting for the advisor").wait_for()
    await advisor_bar.get_by_role("button", name="Not now").click()
    await customer.locator("#notice", has_text="The advisor said not now. You can ask again later.").wait_for()
    assert await customer_bar.locator(".cc-ask").is_hidden()
    assert await customer_bar.get_by_role("button", name="Voice call").is_enabled()
    assert await advisor_bar.locator(".cc-ask").is_hidden()
    await screenshot(customer, "decline-customer-told")

    # later the advisor asks, the customer agrees: a voice call; then the customer hangs up
    await advisor_bar.get_by_role("button", name="Voice call").click()
    await customer_bar.get_by_role("button", name="Agree").click()
    await customer.wait_for_selector("#media.voice[data-state=connected]", timeout=20_000)
    await panel.locator(".media.voice[data-state=connected]").wait_for(timeout=20_000)
    await customer_bar.get_by_role("button", name="Mute").click()  # a media.state to replay
    await advisor_bar.locator(".cc-peer", has_text="muted").wait_for()
    await customer_bar.get_by_role("button", name="End call, keep chatting").click()
    await customer.wait_for_selector("#media.hidden", state="attached")
    await customer.click("#end")
    await wrap_up(panel)
    await sealed(server.app, str(contact_id))

    officer = await make_user(fast_settings, Role.COMPLIANCE, display_name="Carol Chan")
    page = await new_page(viewport=DESKTOP, locale="en-GB")
    await sign_in(page, server, officer.username, "/compliance")
    await page.fill("#case-reason", REASON)
    await page.click("#case-start")
    await page.wait_for_selector("#case-bar:not(.hidden)")
    await page.goto(str(server.make_url(f"/compliance/contacts/{contact_id}")))
    entries = await _entries(page)
    text = "\n".join(entries)
    for words in ("said not now to Voice", "asked to change to Voice", "changed to Voice",
                  "microphone muted", "dropped the call to Chat", "now on Chat"):
        assert words in text, (words, entries)
    for generic in ("upgrade declined", "media state", "downgrade"):
        assert not any(e.endswith(generic) or f" {generic} " in e for e in entries), (generic, entries)
    await screenshot(page, "decline-replay-en")

    await page.goto(str(server.make_url(f"/compliance/contacts/{contact_id}?lang=zh-Hant")))
    text = "\n".join(await _entries(page))
    for words in ("暫時不接受", "將通話降至", "咪高峰靜音"):
        assert words in text, (words, text)
    await screenshot(page, "decline-replay-zh-hant")
    assert new_page.errors == []
