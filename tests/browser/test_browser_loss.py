"""Chromium customer, Python advisor whose leg loses 5% of its RTP both ways: no freeze > 2 s.

The loss is ``tests/media/test_media_loss.py``'s ``RtpLoss`` (a seeded random 5% of the advisor
``SyntheticPeer``'s RTP dropped on its ``RTCDtlsTransport``, sent and received; RTCP passes), so
the server is untouched and the call goes through it as in ``test_browser_media.py``. Unlike the
aiortc customer there, nothing here sends keyframe requests for the browser: whatever PLI/FIR
Chromium's receiver sends on its own reaches the server's customer-facing video sender, and the
encoded relay forwards it (at most one per ``KEYFRAME_REQUEST_INTERVAL``) to the advisor.

What the browser sees is read two ways: ``#remote``'s ``getVideoPlaybackQuality()`` every 250 ms
(the frames the page's video element got), and the ``inbound-rtp`` video stats of the page's
``RTCPeerConnection`` (NACK/PLI/FIR it sent, freezes it counted), reached through an init script
that keeps every ``RTCPeerConnection`` the page creates in ``window.__ccTestPcs``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from contact_center import appkeys
from contact_center.media.ice import IceSettings
from contact_center.tools.synthetic import SyntheticPeer
from tests.media.test_media_loss import LOSS, RtpLoss

pytestmark = pytest.mark.browser

LOSSY_SECONDS = 8.0
SAMPLE_PERIOD = 0.25
MAX_GAP_S = 2.0
SEED = 20240605

KEEP_PEER_CONNECTIONS = """
(() => {
  const Native = window.RTCPeerConnection;
  window.__ccTestPcs = [];
  window.RTCPeerConnection = function (...args) {
    const pc = new Native(...args);
    window.__ccTestPcs.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = Native.prototype;
  Object.setPrototypeOf(window.RTCPeerConnection, Native);
})();
"""

INBOUND_VIDEO = """
async () => {
  const out = {};
  for (const pc of window.__ccTestPcs || []) {
    if (pc.connectionState === 'closed') continue;
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') {
        for (const k of ['packetsReceived', 'packetsLost', 'nackCount', 'pliCount', 'firCount',
                         'framesReceived', 'framesDecoded', 'framesDropped', 'keyFramesDecoded',
                         'freezeCount', 'totalFreezesDuration', 'pauseCount']) {
          out[k] = (out[k] || 0) + (s[k] || 0);
        }
      }
    });
  }
  return out;
}
"""

PLAYED = "document.querySelector('#remote').getVideoPlaybackQuality().totalVideoFrames"


def _delta(after: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    return {
        k: round(v - before.get(k, 0), 3) if isinstance(v, int | float) else v
        for k, v in after.items()
    }


async def test_chromium_video_survives_loss_on_the_advisor_leg(
    server, clients, advisor_factory, new_page
):
    advisor_user = await advisor_factory()
    advisor = await clients(username=advisor_user.username)
    await advisor.request("agent.status", status="available")

    page = await new_page()
    await page.add_init_script(KEEP_PEER_CONNECTIONS)
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
            f"document.querySelector('#remote').videoWidth > 0 && {PLAYED} > 15",
            timeout=15_000,
        )
        call = server.app[appkeys.MEDIA].get(contact_id)
        assert call is not None

        loss = RtpLoss(peer, LOSS, seed=SEED)
        relay_before = call.relay_stats()
        browser_before = await page.evaluate(INBOUND_VIDEO)
        advisor_frames_before = peer.stats.frames.get("video", 0)
        started = time.monotonic()
        samples: list[tuple[float, int]] = [(0.0, await page.evaluate(PLAYED))]
        for _ in range(int(LOSSY_SECONDS / SAMPLE_PERIOD)):  # bounded: 32 samples
            await asyncio.sleep(SAMPLE_PERIOD)
            samples.append((round(time.monotonic() - started, 2), await page.evaluate(PLAYED)))
        relay_after = call.relay_stats()
        browser = _delta(await page.evaluate(INBOUND_VIDEO), browser_before)
        advisor_frames = peer.stats.frames.get("video", 0) - advisor_frames_before
    finally:
        await peer.close()

    to_customer = _delta(relay_after["customer/video"], relay_before["customer/video"])
    to_advisor = _delta(relay_after["advisor/video"], relay_before["advisor/video"])
    # the longest time the played-frame count stood still (a freeze, as the page saw it)
    stalls, last_change = [], samples[0][0]
    for (_, f0), (t1, f1) in zip(samples, samples[1:], strict=False):
        if f1 > f0:
            last_change = t1
        stalls.append(t1 - last_change)
    longest_stall = max(stalls)
    report = (
        f"loss sent={loss.sent} received={loss.received}; browser inbound video {browser}; "
        f"relay to customer {to_customer}; relay to advisor {to_advisor}; "
        f"advisor got {advisor_frames} video frames; played frames {samples}; "
        f"longest stall {longest_stall:.2f}s"
    )
    print(report)

    # the loss really happened, both ways, at about the rate asked for
    for counts in (loss.sent, loss.received):
        total = counts["passed"] + counts["dropped"]
        assert total > 200 and 0.02 < counts["dropped"] / total < 0.09, report
    # the browser kept playing: more frames over the run, never standing still for 2 s
    assert samples[-1][1] - samples[0][1] >= LOSSY_SECONDS * 10, report
    assert longest_stall <= MAX_GAP_S, report
    # (Chromium's own freezeCount/totalFreezesDuration are in the report: a sum over freezes,
    # not the longest one, so not asserted; measured 2 freezes, 0.5-1.3 s in all, per run.)
    # Chromium's keyframe requests (if any) went through the relay to the advisor, whose
    # keyframes came back across the lossy leg
    if browser.get("pliCount", 0) + browser.get("firCount", 0) > 0:
        assert to_customer["keyframe_requests_forwarded"] >= 1, report
        assert to_customer["source_keyframes"] >= 1, report
    # and the other way the advisor kept receiving the browser's camera
    assert advisor_frames >= LOSSY_SECONDS * 5, report
    await page.click("#end")
    await page.wait_for_selector("#state[data-state=wrap_up]")
    assert new_page.errors == []
