"""Chromium (fake camera) as customer or advisor through the server, a Python aiortc peer opposite."""

from __future__ import annotations

import asyncio

import pytest

from contact_center.media.ice import IceSettings
from contact_center.tools.synthetic import SyntheticPeer

pytestmark = pytest.mark.browser


async def test_customer_video_reaches_a_python_advisor(
    server, clients, advisor_factory, new_page, screenshot
):
    advisor_user = await advisor_factory()
    advisor = await clients(username=advisor_user.username)
    await advisor.request("agent.status", status="available")

    page = await new_page()
    await page.goto(str(server.make_url("/")))
    await page.wait_for_function("document.body.dataset.connection === 'open'")
    await page.check("input[name=channel][value=video]")
    await page.check("#skip-bot")
    await page.click("#start-form button[type=submit]")
    offer = await advisor.wait_for("offer")
    contact_id = offer["contact_id"]
    await advisor.request("offer.accept", contact_id=contact_id)

    peer = SyntheticPeer(IceSettings.loopback(), name="advisor")
    try:
        await advisor.request("rtc.offer", contact_id=contact_id, sdp=await peer.offer())
        answer = await advisor.wait_for("rtc.answer", contact_id=contact_id)
        await peer.accept_answer(answer["sdp"])
        async with asyncio.timeout(15):
            await peer.wait_connected()
        await page.wait_for_selector("#media[data-state=connected]", timeout=15_000)
        await page.wait_for_function(
            "document.querySelector('#remote').videoWidth > 0"
            " && document.querySelector('#remote').currentTime > 0.5",
            timeout=15_000,
        )
        async with asyncio.timeout(15):
            while peer.stats.frames.get("video", 0) < 10:
                await asyncio.sleep(0.1)
        # the browser keeps decoding the advisor's painted frames, in order
        decoded = "document.querySelector('#remote').getVideoPlaybackQuality().totalVideoFrames"
        first = await page.evaluate(decoded)
        await asyncio.sleep(1.0)
        assert await page.evaluate(decoded) > first > 0
        before = peer.stats.frames["video"]
        await asyncio.sleep(1.0)
        assert peer.stats.frames["video"] > before  # and the advisor keeps receiving the camera
        await screenshot(page, "customer-video")
    finally:
        await peer.close()
    await page.click("#end")
    await page.wait_for_selector("#state[data-state=wrap_up]")
    assert await page.is_hidden("#media")
    assert new_page.errors == []


async def test_advisor_console_voice_call_with_a_python_customer(
    server, clients, advisor_factory, new_page, screenshot
):
    from tests.browser.helpers import sign_in

    advisor_user = await advisor_factory()
    page = await new_page()
    await sign_in(page, server, advisor_user.username, "/advisor")
    await page.wait_for_function("document.body.dataset.connection === 'open'")
    await page.select_option("#status", "available")
    await page.wait_for_selector("#agent-state[data-state=available]")

    customer = await clients(guest=True)
    started = await customer.request(
        "session.start", channels=["voice"], language="en", skip_bot=True
    )
    contact_id = started["contact_id"]
    offer = page.locator(f".offer[data-contact-id='{contact_id}']")
    await offer.locator(".accept").click()
    await customer.wait_for("session.state", contact_id=contact_id, state="connected")

    peer = SyntheticPeer(IceSettings.loopback(), video=False, name="customer")
    try:
        await customer.request("rtc.offer", contact_id=contact_id, sdp=await peer.offer())
        answer = await customer.wait_for("rtc.answer", contact_id=contact_id)
        await peer.accept_answer(answer["sdp"])
        async with asyncio.timeout(15):
            await peer.wait_connected()
        panel = page.locator(f".contact[data-contact-id='{contact_id}']")
        await panel.locator(".media[data-state=connected]").wait_for(timeout=15_000)
        async with asyncio.timeout(15):
            while peer.stats.frames.get("audio", 0) < 50:  # the advisor's (fake) microphone
                await asyncio.sleep(0.1)
        await screenshot(page, "advisor-voice")
    finally:
        await peer.close()
    await panel.locator(".end").click()
    await panel.locator(".state[data-state=wrap_up]").wait_for()
    assert await panel.locator(".media").is_hidden()
    assert new_page.errors == []
