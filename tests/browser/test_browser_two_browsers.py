"""Two Chromiums with fake cameras, customer page and advisor console, through the server.

The server relays their VP8 as is: this checks, end to end with real browsers, that both remote
videos play, that the server built no video codec for the call, and that the customer's picture
does not freeze.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
import pytest
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from playwright.async_api import Locator

from contact_center import appkeys
from contact_center.media import relay as relay_module
from tests.browser.helpers import sign_in

pytestmark = pytest.mark.browser

FRAMES = "el => el.getVideoPlaybackQuality().totalVideoFrames"
PLAYING = "el => el.videoWidth > 0 && el.currentTime > 0.5"
FREEZE_SAMPLE_S, FREEZE_WINDOW_S, MAX_FREEZE_S = 0.25, 4.0, 2.0


class ServerCodecs(Counter[str]):
    """Decoders and encoders aiortc creates in this process: with browsers on both ends,
    every aiortc object here is the server's."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        super().__init__()
        real_decoder = aiortc.rtcrtpreceiver.get_decoder
        real_encoder = aiortc.rtcrtpsender.get_encoder

        def get_decoder(codec: RTCRtpCodecParameters) -> Any:
            self[f"decoder {codec.mimeType}"] += 1
            return real_decoder(codec)

        def get_encoder(codec: RTCRtpCodecParameters) -> Any:
            self[f"encoder {codec.mimeType}"] += 1
            return real_encoder(codec)

        # Where aiortc 1.16.0's decoder thread and sender, and relay.PacketEncoder, look them up.
        monkeypatch.setattr(aiortc.rtcrtpreceiver, "get_decoder", get_decoder)
        monkeypatch.setattr(aiortc.rtcrtpsender, "get_encoder", get_encoder)
        monkeypatch.setattr(relay_module, "get_encoder", get_encoder)

    def video(self) -> dict[str, int]:
        return {name: n for name, n in self.items() if "video/" in name}


async def _frames_rise(video: Locator, seconds: float = 1.0) -> tuple[int, int]:
    first = await video.evaluate(FRAMES)
    await asyncio.sleep(seconds)
    return first, await video.evaluate(FRAMES)


async def test_customer_and_advisor_browsers_see_each_other(
    server, advisor_factory, new_page, screenshot, monkeypatch
):
    codecs = ServerCodecs(monkeypatch)
    advisor_user = await advisor_factory()
    console = await new_page()
    await sign_in(console, server, advisor_user.username, "/advisor")
    await console.wait_for_function("document.body.dataset.connection === 'open'")
    await console.select_option("#status", "available")
    await console.wait_for_selector("#agent-state[data-state=available]")

    customer = await new_page()
    await customer.goto(str(server.make_url("/")))
    await customer.wait_for_function("document.body.dataset.connection === 'open'")
    await customer.check("input[name=channel][value=video]")
    await customer.check("#skip-bot")
    await customer.click("#start-form button[type=submit]")

    offer = console.locator(".offer")
    await offer.wait_for()
    contact_id = await offer.get_attribute("data-contact-id")
    assert contact_id
    await offer.locator(".accept").click()
    accepted = time.monotonic()
    panel = console.locator(f".contact[data-contact-id='{contact_id}']")

    await customer.wait_for_selector("#media[data-state=connected]", timeout=20_000)
    await panel.locator(".media[data-state=connected]").wait_for(timeout=20_000)
    customer_video = customer.locator("#remote")  # the advisor's camera
    advisor_video = panel.locator("video.remote")  # the customer's camera
    for page, video in ((customer, customer_video), (console, advisor_video)):
        await page.wait_for_function(PLAYING, arg=await video.element_handle(), timeout=20_000)
    playing = time.monotonic() - accepted
    for side, video in (("customer", customer_video), ("advisor", advisor_video)):
        first, then = await _frames_rise(video)
        assert then > first > 0, f"{side}: totalVideoFrames {first} -> {then} over 1 s"
        assert await video.evaluate("el => el.videoWidth") > 0

    # the server relayed the encoded video and built no video codec for it
    call = server.app[appkeys.MEDIA].get(contact_id)
    assert call is not None and call.relay_path == "encoded"
    stats = call.relay_stats()
    assert {k: v["mode"] for k, v in stats.items()} == {
        f"{p}/{k}": "encoded" for p in ("customer", "advisor") for k in ("audio", "video")
    }, stats
    assert all(stats[f"{p}/video"]["packets_relayed"] > 30 for p in ("customer", "advisor"))
    assert codecs.video() == {}, dict(codecs)

    # browser receiver freeze check: the customer's decoded-frame count, every 250 ms for 4 s
    samples: list[tuple[float, int]] = []
    sampling = time.monotonic()
    while (now := time.monotonic()) - sampling <= FREEZE_WINDOW_S:
        samples.append((now, await customer_video.evaluate(FRAMES)))
        await asyncio.sleep(FREEZE_SAMPLE_S)
    last_new, longest = samples[0][0], 0.0
    for (_, previous), (at, count) in zip(samples, samples[1:], strict=False):
        if count > previous:
            longest, last_new = max(longest, at - last_new), at
    longest = max(longest, samples[-1][0] - last_new)
    frames = [n for _, n in samples]
    assert longest <= MAX_FREEZE_S, f"customer video froze {longest:.2f}s: {frames}"
    assert frames[-1] - frames[0] >= FREEZE_WINDOW_S * 10, frames  # the fake camera runs at 20 fps
    print(
        f"two browsers: both videos playing {playing:.1f}s after the advisor accepted; "
        f"relay {stats}; server codecs {dict(codecs)}; customer frames {frames}; "
        f"longest wait for a new frame {longest:.2f}s"
    )

    for name, page in (("two-browsers-customer", customer), ("two-browsers-advisor", console)):
        await screenshot(page, name)
    await customer.click("#end")
    await customer.wait_for_selector("#state[data-state=wrap_up]")
    await panel.locator(".state[data-state=wrap_up]").wait_for()
    assert codecs.video() == {}, dict(codecs)
    assert new_page.errors == []
