"""Call controls in two Chromiums (fake cameras) through the server: text -> voice -> video and
back down, asked from both sides with the buttons; video decoded on both ends (getStats) and
recorded; mute and camera off told to the other side; a customer whose camera is refused."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from playwright.async_api import Locator, Page

from contact_center import appkeys
from recordings.timeline import read_timeline
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, PageErrors
from tests.browser.helpers import axe_violations, sign_in

pytestmark = pytest.mark.browser

FRAMES_DECODED = "el => Number(el.dataset.framesDecoded || 0)"


async def _advisor_console(server, advisor_factory, new_page) -> Page:  # type: ignore[no-untyped-def]
    user = await advisor_factory()
    console = await new_page()
    await sign_in(console, server, user.username, "/advisor")
    await console.wait_for_function("document.body.dataset.connection === 'open'")
    await console.select_option("#status", "available")
    await console.wait_for_selector("#agent-state[data-state=available]")
    return console


async def _start(customer: Page, server, channel: str) -> None:  # type: ignore[no-untyped-def]
    await customer.goto(str(server.make_url("/")))
    await customer.wait_for_function("document.body.dataset.connection === 'open'")
    await customer.check(f"input[name=channel][value={channel}]")
    await customer.check("#skip-bot")
    await customer.click("#start-form button[type=submit]")


async def _accept(console: Page) -> tuple[str, Locator]:
    offer = console.locator(".offer")
    await offer.wait_for()
    contact_id = await offer.get_attribute("data-contact-id")
    assert contact_id
    await offer.locator(".accept").click()
    return contact_id, console.locator(f".contact[data-contact-id='{contact_id}']")


async def _decoding(box: Locator, seconds: float = 20) -> None:
    """The box's getStats reading of video frames decoded rises (the other side's camera)."""
    async with asyncio.timeout(seconds):
        first = await box.evaluate(FRAMES_DECODED)
        while (await box.evaluate(FRAMES_DECODED)) <= max(first, 5):
            await asyncio.sleep(0.3)


def _timeline(folder: Path, kind: str) -> list[dict]:  # type: ignore[type-arg]
    if not (folder / "timeline.jsonl").exists():
        return []
    return [e for e in read_timeline(folder).events if e["kind"] == kind]


async def _until(predicate, seconds: float = 15) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(seconds):
        while not predicate():
            await asyncio.sleep(0.2)


async def test_text_to_voice_to_video_and_back_down_from_both_sides(
    server, advisor_factory, new_page, screenshot
):
    console = await _advisor_console(server, advisor_factory, new_page)
    customer = await new_page()
    await _start(customer, server, "text")
    contact_id, panel = await _accept(console)
    await customer.wait_for_selector("#state[data-state=connected]")
    customer_bar = customer.locator(".call-controls")
    advisor_bar = panel.locator(".call-controls")
    folder = server.app[appkeys.SETTINGS].recordings_dir / contact_id

    # text -> voice: the customer asks, the advisor agrees
    await customer_bar.get_by_role("button", name="Voice call").click()
    await customer_bar.locator(".cc-ask", has_text="waiting for the advisor").wait_for()
    await advisor_bar.locator(".cc-ask", has_text="The customer asks to talk by voice").wait_for()
    await advisor_bar.get_by_role("button", name="Agree").click()
    await customer.wait_for_selector("#media.voice[data-state=connected]", timeout=20_000)
    await panel.locator(".media.voice[data-state=connected]").wait_for(timeout=20_000)
    await customer_bar.get_by_role("button", name="Mute").wait_for()
    assert await customer_bar.locator(".cc-ask").is_hidden()
    # the level meters hear the other side's fake microphone (a beep)
    remote_level = customer_bar.locator(".level-remote meter")
    await customer.wait_for_function("el => el.value > 0.01", arg=await remote_level.element_handle(), timeout=15_000)

    # voice -> video: the advisor asks, the customer agrees; both renegotiate
    await advisor_bar.get_by_role("button", name="Video call").click()
    await customer_bar.locator(".cc-ask", has_text="The advisor asks to turn on video").wait_for()
    agreed = time.monotonic()
    await customer_bar.get_by_role("button", name="Agree").click()
    await customer.wait_for_selector("#media:not(.voice)")
    await panel.locator(".media:not(.voice)").wait_for()
    await _decoding(customer.locator("#media"))  # the advisor's camera, decoded by the customer
    await _decoding(panel.locator(".media"))  # and the customer's, by the advisor
    print(f"voice -> video: both sides decoding video {time.monotonic() - agreed:.1f}s after Agree")
    call = server.app[appkeys.MEDIA].get(contact_id)
    assert call is not None
    await _until(lambda: {e["file"] for e in _timeline(folder, "media_open")} >= {"customer-video-1.webm", "advisor-video-1.webm"})

    # mute and camera off: the other side is told
    await customer_bar.get_by_role("button", name="Mute").click()
    assert await customer_bar.get_by_role("button", name="Unmute").get_attribute("aria-pressed") == "true"
    await customer_bar.get_by_role("button", name="Camera off").click()
    await advisor_bar.locator(".cc-peer", has_text="The customer has muted their microphone.").wait_for()
    await advisor_bar.locator(".cc-peer", has_text="The customer has turned the camera off.").wait_for()
    await screenshot(customer, "calls-customer-video")
    await screenshot(console, "calls-advisor-video")
    assert await axe_violations(customer) == []
    assert await axe_violations(console) == []
    await customer_bar.get_by_role("button", name="Unmute").click()
    await customer_bar.get_by_role("button", name="Camera on").click()
    await advisor_bar.locator(".cc-peer:empty").wait_for(state="attached")

    # video -> voice from the customer's side: both video files end, the voice goes on
    await customer_bar.get_by_role("button", name="Stop video").click()
    await panel.locator(".media.voice[data-state=connected]").wait_for()
    await customer.wait_for_selector("#media.voice")
    await console.locator(f".contact[data-contact-id='{contact_id}'] .peer", has_text="stopped the video").wait_for()
    await _until(lambda: {e["file"] for e in _timeline(folder, "media_close")} >= {"customer-video-1.webm", "advisor-video-1.webm"})
    closed = {e["file"]: e for e in _timeline(folder, "media_close")}
    assert closed["customer-video-1.webm"]["frames"] > 10 and closed["advisor-video-1.webm"]["frames"] > 10
    import av

    for name in ("customer-video-1.webm", "advisor-video-1.webm"):
        with av.open(str(folder / name)) as container:
            assert container.streams.video[0].codec_context.name in ("vp8", "h264")
            assert sum(1 for _ in container.demux(video=0)) > 10
    audio_before = call.frames_received().get("customer/audio", 0)
    await _until(lambda: call.frames_received().get("customer/audio", 0) > audio_before + 20)

    # voice -> text from the advisor's side: the call closes, the chat goes on
    await advisor_bar.get_by_role("button", name="End call, keep chatting").click()
    await customer.wait_for_selector("#media", state="hidden")
    await customer.locator("#notice", has_text="The advisor ended the call").wait_for()
    await panel.locator(".media").wait_for(state="hidden")
    await _until(lambda: server.app[appkeys.MEDIA].get(contact_id) is None)
    await customer.fill("#chat-input", "Thanks, text is fine now")
    await customer.click("#chat-form button[type=submit]")
    await panel.locator(".chat li", has_text="Thanks, text is fine now").wait_for()
    downgrades = [(e["by"], e["channel"]) for e in _timeline(folder, "downgrade")]
    assert downgrades == [("customer", "voice"), ("advisor", "text")]
    await screenshot(customer, "calls-customer-back-to-text")
    assert new_page.errors == []


async def test_a_customer_whose_camera_is_refused_and_the_advisor_is_told(
    server, advisor_factory, new_page, screenshot
):
    from playwright.async_api import async_playwright

    console = await _advisor_console(server, advisor_factory, new_page)
    # A browser that asks before using a device (no auto-accepting fake UI) and a customer who
    # allowed the microphone only: the camera request is refused by the browser.
    args = [a for a in CHROMIUM_ARGS if a != "--use-fake-ui-for-media-stream"]
    errors = PageErrors()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        try:
            context = await browser.new_context(
                viewport={"width": 1100, "height": 900}, bypass_csp=True, permissions=["microphone"]
            )
            context.set_default_timeout(10_000)
            customer = await context.new_page()
            errors.watch(customer)
            await _start(customer, server, "video")
            contact_id, panel = await _accept(console)
            await customer.wait_for_selector("#media[data-state=connected]", timeout=20_000)
            bar = panel.locator(".call-controls")
            await bar.locator(".cc-peer", has_text="The customer has blocked the camera.").wait_for(timeout=15_000)
            assert await panel.locator(".media").get_attribute("data-peer-camera") == "denied"
            await customer.locator(".cc-self", has_text="Your camera is blocked").wait_for()
            # the customer still sees the advisor, and the advisor still hears the customer
            await _decoding(customer.locator("#media"))
            call = server.app[appkeys.MEDIA].get(contact_id)
            assert call is not None
            await _until(lambda: call.frames_received().get("customer/audio", 0) > 20)
            assert call.frames_received().get("customer/video", 0) == 0
            await screenshot(console, "calls-advisor-told-camera-refused")
            await screenshot(customer, "calls-customer-camera-refused")
            await context.close()
        finally:
            await browser.close()
    assert errors == [] and new_page.errors == []


async def test_connection_quality_from_get_stats_readings(server, new_page):
    """media-state.js's reading of getStats (loss and round trip between two readings) and its
    verdict, on reports shaped as Chromium gives them; then the words the other side reads."""
    page = await new_page()
    await page.goto(str(server.make_url("/")))
    result = await page.evaluate(
        """async () => {
          const m = await import('/static/media-state.js');
          const report = (lost, received, frames, rtt) => ({ getStats: async () => new Map([
            ['a', { type: 'inbound-rtp', kind: 'audio', packetsLost: lost, packetsReceived: received }],
            ['v', { type: 'inbound-rtp', kind: 'video', packetsLost: 0, packetsReceived: received, framesDecoded: frames }],
            ['p', { type: 'candidate-pair', nominated: true, currentRoundTripTime: rtt }],
          ]) });
          const stats = new m.ConnectionStats();
          const first = await stats.read(report(0, 100, 10, 0.02));
          const lossy = await stats.read(report(30, 200, 40, 0.02));   // 30 of 230 lost (audio and video)
          const slow = await stats.read(report(30, 300, 70, 0.65));    // 650 ms round trip
          const stalled = await stats.read(report(30, 300, 70, 0.02)); // nothing arrived
          const verdict = (r) => m.quality(r, { expectVideo: false });
          return {
            first: verdict(first), lossy: verdict(lossy), loss: Math.round(lossy.lossPct),
            slow: verdict(slow), stalled: verdict(stalled), frames: stalled.framesDecoded,
            none: m.quality(null, { expectVideo: false }),
            words: m.describeRemote({ microphone: 'on', camera: 'none', connection: 'poor', loss_pct: 23, rtt_ms: 40 }, 'calls.who_customer'),
          };
        }"""
    )
    assert result == {
        "first": "good", "lossy": "poor", "loss": 13, "slow": "poor", "stalled": "poor", "frames": 70,
        "none": "unknown", "words": "The customer has a poor connection (23% lost, 40 ms delay).",
    }
