"""The advisor console tells the right facts: VIP apart from priority, the bot's intent, advisors
by name, the customer in the panel header, whose line is whose after a transfer; and the
customer page names the advisor."""

from __future__ import annotations

import re

import pytest

from contact_center import appkeys
from contact_center.contacts.states import ContactState
from contact_center.db.models import Role
from contact_center.identity.auth import Identity
from routing.models import Channel
from tests.browser.helpers import sign_in
from tests.helpers import make_user

pytestmark = pytest.mark.browser


async def _facts(locator) -> dict[str, str]:  # type: ignore[no-untyped-def]
    pairs = await locator.locator(".facts > div").evaluate_all(
        "rows => rows.map(r => [r.dataset.fact, r.querySelector('dd').textContent])"
    )
    return dict(pairs)


async def _console(new_page, server, username: str):  # type: ignore[no-untyped-def]
    page = await new_page()
    await sign_in(page, server, username, "/advisor")
    await page.wait_for_function("document.body.dataset.connection === 'open'")
    return page


async def test_offers_and_the_panel_tell_who_the_customer_is(
    server, clients, advisor_factory, fast_settings, new_page, screenshot
):
    emma = await advisor_factory(display_name="Emma Lau", skills={"cards": 5})
    ken = await advisor_factory(display_name="Ken Ho", skills={"cards": 3})
    page = await _console(new_page, server, emma.username)
    await page.select_option("#status", "available")
    await page.wait_for_selector("#agent-state[data-state=available]")
    other = await clients(username=ken.username)
    await other.request("agent.status", status="available")

    # A guest whose lost-card intent raised the priority: priority shown, no VIP badge.
    guest = await clients(guest=True)
    svc = server.app[appkeys.CONTACTS]
    identity = Identity(ref=guest.welcome["user"], role=Role.CUSTOMER, display_name="Guest")
    urgent = await svc.start(
        identity, channels=[Channel.TEXT], language="en", topic="cards", state=ContactState.BOT
    )
    await svc.handoff_to_queue(
        urgent.id, actor="bot", language="en", skills={"cards": 2}, priority=5,
        data={"intent": "report_lost_card", "reason": "intent"},
    )
    offer = page.locator(f".offer[data-contact-id='{urgent.id}']")
    await offer.wait_for()
    assert await offer.locator(".vip").is_hidden()
    assert await offer.locator(".priority").text_content() == "Priority 5"
    facts = await _facts(offer)
    assert facts["customer"] == "Guest (not signed in)"
    assert facts["intent"] == "Lost or stolen card"
    assert re.fullmatch(r"\d+ s", facts["waiting"])
    await offer.locator(".why summary").click()
    # advisors by name, not by internal number (the other cells are scores and times)
    names = await offer.locator(".why table tr:has(td) > :first-child").all_text_contents()
    assert sorted(n.strip() for n in names) == ["Emma Lau (you)", "Ken Ho"]
    await screenshot(page, "desktop-offer-priority-guest")
    await offer.locator(".reject").click()
    await offer.wait_for(state="detached")
    await other.wait_for("offer", contact_id=urgent.id)

    # A signed-in VIP: the VIP badge, the name; once accepted the panel header has it all.
    mei = await make_user(fast_settings, Role.CUSTOMER, display_name="Mei Chan", vip=True)
    customer = await clients(username=mei.username)
    contact_id = (
        await customer.request(
            "session.start", channels=["text"], language="en", topic="cards", skip_bot=True
        )
    )["contact_id"]
    await customer.request("chat.send", contact_id=contact_id, text="my card was swallowed")
    offer = page.locator(f".offer[data-contact-id='{contact_id}']")
    await offer.wait_for()
    assert await offer.locator(".vip").is_visible()
    assert await offer.locator(".priority").is_hidden()
    assert (await _facts(offer))["customer"] == "Mei Chan"
    await screenshot(page, "desktop-offer-vip")
    await offer.locator(".accept").click()

    panel = page.locator(f".contact[data-contact-id='{contact_id}']")
    await panel.locator(".state[data-state=connected]").wait_for()
    assert (await panel.locator(".title").text_content()).startswith("Mei Chan")
    assert await panel.locator("header .vip").is_visible()
    facts = await _facts(panel)
    assert facts["channel"] == "Chat" and facts["language"] == "English"
    assert facts["topic"] == "Cards" and facts["intent"] == "not detected"
    assert re.fullmatch(r"\d+ s", facts["waited"])
    told = await customer.wait_for("session.state", contact_id=contact_id, state="connected")
    assert told["advisor_name"] == "Emma Lau"
    await panel.locator(".chat-input").fill("Hello Mei, I am on it.")
    await panel.locator(".chat-input").press("Enter")
    mine = panel.locator(".chat li.mine")
    await mine.wait_for()
    assert await mine.locator(".who").text_content() == "You"
    await screenshot(page, "desktop-panel-vip")

    # A reload (the console reconnects) keeps the header.
    await page.reload()
    await page.wait_for_function("document.body.dataset.connection === 'open'")
    await panel.locator(".state[data-state=connected]").wait_for()
    assert (await panel.locator(".title").text_content()).startswith("Mei Chan")
    assert (await _facts(panel))["topic"] == "Cards"
    await panel.locator(".chat li.mine").wait_for()
    assert new_page.errors == []


async def test_after_a_transfer_lines_keep_their_author_on_both_sides(
    server, clients, advisor_factory, new_page, screenshot
):
    emma = await advisor_factory(display_name="Emma Lau", skills={"cards": 4})
    ken = await advisor_factory(display_name="Ken Ho", skills={"loans": 4})
    first = await clients(username=emma.username)
    await first.request("agent.status", status="available")

    customer_page = await new_page(viewport={"width": 900, "height": 900})
    await customer_page.goto(str(server.make_url("/")))
    await customer_page.wait_for_function("document.body.dataset.connection === 'open'")
    await customer_page.check("#skip-bot")
    await customer_page.select_option("select[name=topic]", "cards")
    await customer_page.click("#start-form button[type=submit]")
    offer = await first.wait_for("offer")
    contact_id = offer["contact_id"]
    await first.request("offer.accept", contact_id=contact_id)
    await customer_page.wait_for_function(
        "document.querySelector('#state').textContent === 'Connected to Emma Lau'"
    )
    await first.request("chat.send", contact_id=contact_id, text="Ken will help you with the loan.")
    await first.request(
        "session.transfer", contact_id=contact_id, skills={"loans": 3}, queue_anyway=True
    )

    page = await _console(new_page, server, ken.username)
    await page.select_option("#status", "available")
    offer_node = page.locator(f".offer[data-contact-id='{contact_id}']")
    await offer_node.wait_for()
    await offer_node.locator(".accept").click()
    panel = page.locator(f".contact[data-contact-id='{contact_id}']")
    await panel.locator(".state[data-state=connected]").wait_for()
    previous = panel.locator(".chat li[data-seq='1']")
    await previous.wait_for()
    assert await previous.get_attribute("class") == "advisor"
    assert await previous.locator(".who").text_content() == "Emma Lau (advisor)"
    await panel.locator(".chat-input").fill("Hello, Ken here. Which loan is it about?")
    await panel.locator(".chat-input").press("Enter")
    own = panel.locator(".chat li[data-seq='2']")
    await own.wait_for()
    assert await own.get_attribute("class") == "mine"
    assert await own.locator(".who").text_content() == "You"
    await screenshot(page, "desktop-after-transfer")

    await customer_page.wait_for_function(
        "document.querySelector('#state').textContent === 'Connected to Ken Ho'"
    )
    await customer_page.locator("#chat li[data-seq='2']").wait_for()
    labels = await customer_page.locator("#chat li .who").all_text_contents()
    assert labels == ["Emma Lau (advisor)", "Ken Ho (advisor)"]
    await screenshot(customer_page, "desktop-customer-names-advisor")
    assert new_page.errors == []
