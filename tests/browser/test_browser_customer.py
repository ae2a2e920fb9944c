"""The customer page in Chromium against the real server, with a Python advisor."""

from __future__ import annotations

import asyncio

import pytest

pytestmark = pytest.mark.browser


async def _open_customer_page(new_page, server):  # type: ignore[no-untyped-def]
    page = await new_page()
    await page.goto(str(server.make_url("/")))
    await page.wait_for_function("document.body.dataset.connection === 'open'")
    return page


async def _chat_lines(page) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    pairs = await page.eval_on_selector_all(
        "#chat li",
        "items => items.map(li => [li.dataset.sender, li.querySelector('.text').textContent])",
    )
    return [(sender, text) for sender, text in pairs]


async def test_guest_text_chat_with_a_python_advisor(
    server, clients, advisor_factory, new_page, screenshot
):
    advisor_user = await advisor_factory()
    advisor = await clients(username=advisor_user.username)
    await advisor.request("agent.status", status="available")

    page = await _open_customer_page(new_page, server)
    await page.check("#skip-bot")
    await page.select_option("select[name=topic]", "cards")
    await page.click("#start-form button[type=submit]")
    await page.wait_for_selector("#conversation:not(.hidden)")
    await page.wait_for_selector("#start", state="hidden")

    offer = await advisor.wait_for("offer")
    contact_id = offer["contact_id"]
    assert offer["skills"] == {"cards": 2}
    await advisor.request("offer.accept", contact_id=contact_id)
    await page.wait_for_selector("#state[data-state=connected]")
    assert await page.text_content("#state") == f"Connected to {advisor_user.display_name}"
    token = await page.evaluate("sessionStorage.getItem('cc.resume_token')")
    assert token and len(token) >= 16

    # typing, both ways
    await page.type("#chat-input", "hel")
    typing = await advisor.wait_for("chat.typing", contact_id=contact_id)
    assert typing["sender"] == "customer"
    await page.fill("#chat-input", "")
    await advisor.request("chat.typing", contact_id=contact_id)
    await page.wait_for_selector("#typing:not(.hidden)")

    expected: list[tuple[str, str]] = []
    by_advisor: list[dict] = []  # every chat line the advisor received, in arrival order
    for i in range(3):
        text = f"customer says {i}"
        await page.fill("#chat-input", text)
        await page.press("#chat-input", "Enter")
        expected.append(("customer", text))
        by_advisor.append(await advisor.wait_for("chat.message", contact_id=contact_id))
        reply = f"advisor answers {i} <b>not bold</b>"
        await advisor.request("chat.send", contact_id=contact_id, text=reply)
        expected.append(("advisor", reply))
        by_advisor.append(await advisor.wait_for("chat.message", contact_id=contact_id))
        await page.wait_for_selector(f"#chat li[data-seq='{len(expected)}']")
    await page.wait_for_selector("#typing", state="hidden")  # a message ends the indicator
    assert await _chat_lines(page) == expected
    assert await page.locator("#chat b").count() == 0  # text, never markup
    assert [(m["sender"], m["text"]) for m in by_advisor] == expected
    assert [m["seq"] for m in by_advisor] == list(range(1, 7))

    # drop the socket: the page reconnects, resumes, history is replayed: no duplicates
    await page.evaluate("window.ccSignalling._ws.close()")
    await page.wait_for_function("document.body.dataset.connection === 'closed'")
    await page.wait_for_function("document.body.dataset.connection === 'open'")
    await advisor.request("chat.send", contact_id=contact_id, text="still here?")
    expected.append(("advisor", "still here?"))
    await page.wait_for_selector(f"#chat li[data-seq='{len(expected)}']")
    await asyncio.sleep(0.3)  # let any replayed history arrive
    assert await _chat_lines(page) == expected
    await screenshot(page, "customer-connected")

    await page.click("#end")
    await advisor.wait_for("session.state", contact_id=contact_id, state="wrap_up")
    await page.wait_for_selector("#state[data-state=wrap_up]")
    assert await page.is_hidden("#chat-form")
    assert await page.is_visible("#again")
    assert await page.evaluate("sessionStorage.getItem('cc.resume_token')") is None
    assert (await advisor.request("wrapup.done", contact_id=contact_id))["ended"] == [contact_id]
    assert new_page.errors == []


async def test_queue_position_is_shown_in_words(server, clients, new_page, screenshot):
    """Nobody is signed in: the customer waits and sees the place in line, and that nobody who
    could help is signed in (no estimate that would mean nothing)."""
    other = await clients(guest=True)
    await other.request("session.start", channels=["text"], language="en", skip_bot=True)

    page = await _open_customer_page(new_page, server)
    await page.check("#skip-bot")
    await page.click("#start-form button[type=submit]")
    await page.wait_for_selector("#state[data-state=queued]")
    await page.wait_for_function("document.querySelector('#queue').textContent.includes('line')")
    queue = await page.text_content("#queue")
    assert queue == "You are 2nd in line — nobody who can help with this is signed in right now"

    # a reload finds the conversation again (the cookie session replays state and history)
    await page.fill("#chat-input", "are you there?")
    await page.press("#chat-input", "Enter")
    await page.wait_for_selector("#chat li[data-seq='1']")
    await page.reload()
    await page.wait_for_selector("#state[data-state=queued]")
    assert await page.is_hidden("#start")
    await page.wait_for_selector("#chat li[data-seq='1']")
    assert await _chat_lines(page) == [("customer", "are you there?")]
    await page.click("#end")
    await page.wait_for_selector("#state[data-state=abandoned]")
    assert await page.text_content("#state") == "You left the queue"

    # again, in Cantonese: the page's own words follow the chosen language
    await page.click("#again")
    await page.select_option("#language", "yue")
    assert await page.text_content("#start h1") == "聯絡我們"
    await page.check("#skip-bot")
    await page.click("#start-form button[type=submit]")
    await page.wait_for_selector("#state[data-state=queued]")
    assert await page.text_content("#state") == "等緊客戶經理"
    await page.wait_for_function("document.querySelector('#queue').textContent.length > 0")
    assert (await page.text_content("#queue")).startswith("下一位就到你")
    await screenshot(page, "customer-queued-yue")
    await page.click("#end")
    await page.wait_for_selector("#state[data-state=abandoned]")
    assert new_page.errors == []
