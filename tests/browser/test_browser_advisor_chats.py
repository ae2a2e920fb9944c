"""The advisor desktop all day: three chats side by side with unread counts, the customer's
context with an earlier contact and its outcome, a transfer with a note the next advisor sees
(and one nobody could serve, warned about first), and wrap-up with an outcome kept on the
contact, by both advisors."""

from __future__ import annotations

import re

import pytest
from sqlmodel import select

from contact_center import appkeys
from contact_center.db.engine import transaction
from contact_center.db.models import Contact, ContactWrapup, Role
from tests.browser.helpers import axe_violations, sign_in
from tests.helpers import make_user

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1440, "height": 900}


async def _console(new_page, server, username: str):  # type: ignore[no-untyped-def]
    page = await new_page(viewport=DESKTOP)
    await sign_in(page, server, username, "/advisor")
    await page.wait_for_function("document.body.dataset.connection === 'open'")
    return page


async def _wrapups(server, contact_id: str) -> list[ContactWrapup]:  # type: ignore[no-untyped-def]
    async with transaction(server.app[appkeys.DB]) as session:
        rows = await session.exec(
            select(ContactWrapup).where(ContactWrapup.contact_id == contact_id)
        )
        return list(rows.all())


async def _start(customer) -> str:  # type: ignore[no-untyped-def]
    started = await customer.request(
        "session.start", channels=["text"], language="en", topic="cards", skip_bot=True
    )
    return str(started["contact_id"])


async def _unread(panel) -> int:  # type: ignore[no-untyped-def]
    badge = panel.locator("header .unread")
    return int(await badge.get_attribute("data-count") or 0) if await badge.is_visible() else 0


async def test_three_chats_side_by_side_with_unread_counts_and_the_customer_context(
    server, clients, advisor_factory, fast_settings, new_page, screenshot
):
    emma = await advisor_factory(
        display_name="Emma Lau", capacity={"text": 3, "voice": 1, "video": 1}
    )
    ken_user = await advisor_factory(display_name="Ken Ho")
    mei = await make_user(fast_settings, Role.CUSTOMER, display_name="Mei Chan", vip=True)

    # Mei called last week: Ken handled it and asked for a callback.
    ken = await clients(username=ken_user.username)
    await ken.request("agent.status", status="available")
    mei_client = await clients(username=mei.username)
    earlier = await _start(mei_client)
    await ken.wait_for("offer", contact_id=earlier)
    await ken.request("offer.accept", contact_id=earlier)
    await ken.request("session.end", contact_id=earlier)
    await ken.request(
        "wrapup.done", contact_id=earlier, outcome="callback_requested",
        notes="Call back about the card limit",
    )
    await ken.request("agent.status", status="offline")

    page = await _console(new_page, server, emma.username)
    await page.select_option("#status", "available")
    await page.wait_for_selector("#agent-state[data-state=available]")
    customers = [mei_client, await clients(guest=True), await clients(guest=True)]
    ids = []
    for customer in customers:
        contact_id = await _start(customer)
        ids.append(contact_id)
        offer = page.locator(f".offer[data-contact-id='{contact_id}']")
        await offer.locator(".accept").click()
        await page.locator(f".contact[data-contact-id='{contact_id}'] .state[data-state=connected]").wait_for()
    panels = [page.locator(f".contact[data-contact-id='{i}']") for i in ids]

    # side by side: one row, left to right, each with its own customer header
    boxes = [await p.bounding_box() for p in panels]
    assert all(b is not None for b in boxes)
    assert len({round(b["y"]) for b in boxes}) == 1  # type: ignore[index]
    assert boxes[0]["x"] < boxes[1]["x"] < boxes[2]["x"]  # type: ignore[index]
    assert all(b["width"] >= 300 for b in boxes)  # type: ignore[index]
    assert (await panels[0].locator(".title").text_content()).startswith("Mei Chan")
    assert (await panels[1].locator(".title").text_content()).startswith("Guest")

    # the first panel is the one being worked in; lines elsewhere are counted, with a beep
    await panels[0].locator(".chat-input").click()
    for n, customer in enumerate(customers[1:], start=1):
        await customer.request("chat.send", contact_id=ids[n], text=f"hello from customer {n}")
        await panels[n].locator(".chat li.customer").wait_for()
    await customers[1].request("chat.send", contact_id=ids[1], text="are you there?")
    await page.wait_for_function(
        "document.querySelectorAll('.contact header .unread[data-count=\"2\"]').length === 1"
    )
    assert [await _unread(p) for p in panels] == [0, 2, 1]
    assert re.match(r"^\(3\) ", await page.title())
    assert await page.evaluate("window.ccDesk.beeper.count") == 3

    # the context panel shows the active contact's customer and her earlier contact
    context = page.locator("#context")
    await page.wait_for_selector(f"#context[data-loaded='{ids[0]}']")
    assert await context.locator(".context-name").text_content() == "Mei Chan"
    assert await context.locator(".vip").is_visible()
    previous = context.locator(f".previous-contact[data-contact-id='{earlier}']")
    assert await previous.locator(".outcome").text_content() == "Callback requested"
    assert await previous.locator(".notes").text_content() == "Call back about the card limit"
    assert "Ken Ho" in await previous.locator(".who-handled").text_content()
    await screenshot(page, "desk-three-chats-unread")

    # answering each one reads it: counts clear, the customer gets the line
    for n, customer in enumerate(customers):
        await panels[n].locator(".chat-input").click()
        await panels[n].locator(".canned .chip").first.click()  # a canned greeting, edited
        await panels[n].locator(".chat-input").press("End")
        await panels[n].locator(".chat-input").type(f" (chat {n})")
        await panels[n].locator(".chat-input").press("Enter")
        line = await customer.wait_for("chat.message", contact_id=ids[n], sender="advisor")
        assert line["text"].startswith("Hello, thank you for contacting Harbour Bank")
        assert line["text"].endswith(f"(chat {n})")
        assert await _unread(panels[n]) == 0
    assert not re.match(r"^\(\d+\) ", await page.title())
    # the context follows the chat being worked in: a guest, with nothing before
    await page.wait_for_selector(f"#context[data-loaded='{ids[2]}']")
    assert await context.locator(".context-guest").is_visible()
    assert await context.locator(".previous-none").is_visible()

    await panels[0].locator(".chat-input").click()
    await page.wait_for_selector(f"#context[data-loaded='{ids[0]}']")
    await screenshot(page, "desk-three-chats-context")
    assert await axe_violations(page) == []  # every control labelled, contrast, roles

    # a narrower screen: tabs, one chat at a time; a line elsewhere is counted on its tab
    await page.set_viewport_size({"width": 900, "height": 900})
    tabs = page.locator("#contact-tabs .contact-tab")
    assert await tabs.count() == 3 and await page.locator("#contact-tabs").is_visible()
    assert [await p.is_visible() for p in panels] == [True, False, False]
    await customers[2].request("chat.send", contact_id=ids[2], text="one more question")
    tab = page.locator(f"#contact-tabs .contact-tab[data-contact-id='{ids[2]}']")
    await tab.locator(".unread[data-count='1']").wait_for()
    await screenshot(page, "desk-tabs-narrow")
    await tab.click()
    assert [await p.is_visible() for p in panels] == [False, False, True]
    await tab.locator(".unread").wait_for(state="hidden")
    assert await tab.get_attribute("aria-selected") == "true"
    assert new_page.errors == []


async def test_transfer_with_a_note_and_wrap_up_with_outcomes_by_both_advisors(
    server, clients, advisor_factory, new_page, screenshot
):
    emma = await advisor_factory(display_name="Emma Lau", skills={"cards": 4, "general": 3})
    ken = await advisor_factory(display_name="Ken Ho", skills={"loans": 4, "general": 3})
    emma_page = await _console(new_page, server, emma.username)
    await emma_page.select_option("#status", "available")
    await emma_page.wait_for_selector("#agent-state[data-state=available]")
    customer = await clients(guest=True)
    contact_id = await _start(customer)
    await emma_page.locator(f".offer[data-contact-id='{contact_id}'] .accept").click()
    panel = emma_page.locator(f".contact[data-contact-id='{contact_id}']")
    await panel.locator(".state[data-state=connected]").wait_for()

    # Ken is not signed in: a transfer to loans is warned about and not made
    await panel.locator(".transfer-box summary").click()
    form = panel.locator(".transfer-form")
    await form.locator("select[name=skill] option[value=loans]").wait_for(state="attached")
    await form.locator("select[name=skill]").select_option("loans")
    await emma_page.wait_for_function(
        "document.querySelector('.transfer-form').dataset.servable === 'false'"
    )
    assert await form.locator(".who-can").text_content() == "Nobody signed in has this skill and language."
    await form.locator("textarea[name=note]").fill("Wants to refinance the mortgage; identity checked")
    await form.locator(".do-transfer").click()
    await form.locator(".transfer-warning").wait_for()
    assert await form.locator(".transfer-anyway").is_visible()
    assert await panel.locator(".state").get_attribute("data-state") == "connected"
    await screenshot(emma_page, "desk-transfer-nobody-warned")

    # Ken signs in: the picker names him, the transfer goes with its note
    ken_page = await _console(new_page, server, ken.username)
    await ken_page.select_option("#status", "available")
    await ken_page.wait_for_selector("#agent-state[data-state=available]")
    await form.locator("select[name=level]").select_option("3")
    await emma_page.wait_for_function(
        "document.querySelector('.transfer-form').dataset.now === '1'"
    )
    assert await form.locator(".who-can").text_content() == "Could take it now: Ken Ho"
    assert await form.locator(".transfer-warning").is_hidden()
    await form.locator(".do-transfer").click()
    await panel.locator(".state[data-state=transferred]").wait_for()

    offer = ken_page.locator(f".offer[data-contact-id='{contact_id}']")
    await offer.wait_for()
    note = "“Wants to refinance the mortgage; identity checked” — Emma Lau"
    assert await offer.locator(".transfer-note").text_content() == note
    await screenshot(ken_page, "desk-offer-with-transfer-note")
    await offer.locator(".accept").click()
    ken_panel = ken_page.locator(f".contact[data-contact-id='{contact_id}']")
    await ken_panel.locator(".state[data-state=connected]").wait_for()
    assert await ken_panel.locator("header .transfer-note").text_content() == note
    await ken_page.wait_for_selector(f"#context[data-loaded='{contact_id}']")
    assert await ken_page.locator("#context .note-text").text_content() == note

    # Emma, who passed it on, wraps up too; a reload of her console does not lose it
    wrap = panel.locator(".wrapup-form")
    await wrap.wait_for()
    await emma_page.reload()
    await emma_page.wait_for_function("document.body.dataset.connection === 'open'")
    await panel.locator(".state[data-state=wrapup_pending]").wait_for()
    await wrap.wait_for()
    await wrap.locator("select[name=outcome]").select_option("transferred")
    await wrap.locator("textarea[name=notes]").fill("Passed to lending")
    await screenshot(emma_page, "desk-wrapup-after-transfer")
    assert await axe_violations(emma_page) == []
    await wrap.locator("button[type=submit]").click()
    await panel.wait_for(state="detached")

    # Ken ends it: the wrap-up timer runs, he records the outcome and is ready early
    await ken_panel.locator(".end").click()
    ken_wrap = ken_panel.locator(".wrapup-form")
    await ken_wrap.wait_for()
    await ken_page.wait_for_function(
        "/left$/.test(document.querySelector('.wrapup-timer').textContent)"
    )
    await ken_wrap.locator("select[name=outcome]").select_option("resolved")
    await ken_wrap.locator("textarea[name=notes]").fill("Refinance application sent")
    await screenshot(ken_page, "desk-wrapup-timer")
    await ken_wrap.locator("button[type=submit]").click()
    await ken_panel.wait_for(state="detached")
    await ken_page.wait_for_selector("#agent-state[data-state=available]")

    wrapups = await _wrapups(server, contact_id)
    assert [(w.advisor_id, w.outcome, w.notes) for w in wrapups] == [
        (emma.id, "transferred", "Passed to lending"),
        (ken.id, "resolved", "Refinance application sent"),
    ]
    async with transaction(server.app[appkeys.DB]) as session:
        contact = await session.get(Contact, contact_id)
    assert contact is not None and contact.state == "ended"
    assert new_page.errors == []


async def test_away_after_missed_offers_says_why_and_how_to_come_back(
    server, clients, advisor_factory, new_page, screenshot
):
    emma = await advisor_factory(display_name="Emma Lau")
    page = await _console(new_page, server, emma.username)
    await page.select_option("#status", "available")
    await page.wait_for_selector("#agent-state[data-state=available]")
    misses = server.app[appkeys.ROUTER].policy.misses_before_away
    for _ in range(misses):
        contact_id = await _start(await clients(guest=True))
        await page.locator(f".offer[data-contact-id='{contact_id}'] .reject").click()
        await page.locator(f".offer[data-contact-id='{contact_id}']").wait_for(state="detached")
    await page.wait_for_selector("#agent-state[data-state=away]")
    notice = await page.locator("#notice").text_content()
    assert notice == (
        f"You were set to Away after {misses} missed offers in a row. "
        "Choose “Available” under Status to take contacts again."
    )
    assert await page.input_value("#status") == "away"
    await screenshot(page, "desk-away-after-missed-offers")
    await page.select_option("#status", "available")  # and back, as it says
    await page.wait_for_selector("#agent-state:not([data-state=away])")
    assert new_page.errors == []
