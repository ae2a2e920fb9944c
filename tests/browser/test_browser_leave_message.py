"""The customer page with nobody signed in who could serve the contact: no made-up wait, an
offer to leave a message and be called back; the message is kept on the contact."""

from __future__ import annotations

import pytest

from contact_center import appkeys
from contact_center.contacts import store
from contact_center.contacts.alarms import read_alarms
from contact_center.db.engine import transaction
from tests.browser.helpers import axe_violations

pytestmark = pytest.mark.browser


async def test_nobody_signed_in_the_customer_leaves_a_message_and_a_number(server, new_page, screenshot):
    page = await new_page()
    await page.goto(str(server.make_url("/")))
    await page.wait_for_function("document.body.dataset.connection === 'open'")
    await page.select_option("select[name=topic]", "loans")
    await page.check("#skip-bot")
    await page.click("#start-form button[type=submit]")
    await page.wait_for_selector("#state[data-state=queued]")
    await page.locator("#queue", has_text="You are next in line — nobody who can help with this is signed in right now").wait_for()
    assert "min" not in await page.text_content("#queue")  # no estimate
    form = page.locator("form.leave-message")
    await form.wait_for()
    await form.get_by_label("Your message").fill("Please tell me the early repayment fee of my mortgage.")
    await form.get_by_label("Please call me back").check()
    await form.get_by_label("Phone number").fill("+852 6123 4567")
    await screenshot(page, "leave-message")
    assert await axe_violations(page) == []
    await form.get_by_role("button", name="Leave the message").click()
    await page.wait_for_selector("#state[data-state=abandoned]")
    await page.locator("#notice", has_text="your message is with us").wait_for()
    assert await form.is_hidden()
    await screenshot(page, "leave-message-sent")

    alarms = [a for a in await read_alarms(server.app[appkeys.REDIS], count=1000) if a.kind == "message_left"]
    assert len(alarms) == 1 and "+852 6123 4567" in alarms[0].message
    async with transaction(server.app[appkeys.DB]) as session:
        lines = await store.chat_history(session, contact_id=alarms[0].contact_id or "")
    assert [line.text for line in lines] == ["Please tell me the early repayment fee of my mortgage."]
    assert new_page.errors == []
