"""The advisor console in Chromium takes a contact from a Python customer."""

from __future__ import annotations

import pytest

from tests.browser.helpers import sign_in, wrap_up

pytestmark = pytest.mark.browser


async def test_advisor_console_accepts_an_offer(
    server, clients, advisor_factory, new_page, screenshot
):
    advisor_user = await advisor_factory()
    page = await new_page()
    await sign_in(page, server, advisor_user.username, "/advisor")
    await page.wait_for_function("document.body.dataset.connection === 'open'")
    await page.wait_for_selector("#agent-state[data-state=offline]")

    # the customer waits (and writes) first, so the offer comes with a transcript
    customer = await clients(guest=True)
    started = await customer.request(
        "session.start", channels=["text"], language="en", topic="cards", skip_bot=True
    )
    contact_id = started["contact_id"]
    await customer.request("chat.send", contact_id=contact_id, text="my card is stuck")
    await page.select_option("#status", "available")

    offer = page.locator(f".offer[data-contact-id='{contact_id}']")
    await offer.wait_for()
    await page.wait_for_function(
        f"document.querySelector(\".offer[data-contact-id='{contact_id}'] .countdown\").textContent.endsWith('s left')"
    )
    assert "cards ≥ 2" in await offer.locator(".summary").text_content()
    assert "first contact you can serve" in await offer.locator(".why").text_content()
    assert "my card is stuck" in await offer.locator(".transcript").text_content()
    await screenshot(page, "advisor-offer")

    await offer.locator(".accept").click()
    await customer.wait_for("session.state", contact_id=contact_id, state="connected")
    panel = page.locator(f".contact[data-contact-id='{contact_id}']")
    await panel.locator(".state[data-state=connected]").wait_for()
    assert await offer.count() == 0
    await panel.locator(".chat li[data-seq='1']").wait_for()  # the transcript so far
    await page.wait_for_selector("#agent-state[data-state=busy]")

    await customer.request("chat.typing", contact_id=contact_id)
    await panel.locator(".typing:not(.hidden)").wait_for()
    await customer.request("chat.send", contact_id=contact_id, text="hello?")
    await panel.locator(".chat li[data-seq='2']").wait_for()
    await panel.locator(".chat-input").fill("Hello, I can help with that.")
    await panel.locator(".chat-input").press("Enter")
    line = await customer.wait_for("chat.message", contact_id=contact_id, sender="advisor")
    assert line["text"] == "Hello, I can help with that." and line["seq"] == 3
    await panel.locator(".chat li[data-seq='3']").wait_for()
    texts = await panel.locator(".chat li .text").all_text_contents()
    assert texts == ["my card is stuck", "hello?", "Hello, I can help with that."]
    await screenshot(page, "advisor-connected")

    await customer.request("session.end", contact_id=contact_id)
    await panel.locator(".state[data-state=wrap_up]").wait_for()
    await wrap_up(panel)
    await panel.locator(".state[data-state=ended]").wait_for()
    await panel.wait_for(state="detached")
    assert new_page.errors == []
