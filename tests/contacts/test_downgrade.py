"""Dropping media inside one contact (video -> voice -> text) and telling the other party what
one's media is like: real aiortc peers through the server, loopback only."""

from __future__ import annotations

import asyncio

import pytest

from contact_center import appkeys
from contact_center.contacts.upgrades import downgraded_channels
from contact_center.media.ice import IceSettings
from contact_center.tools.synthetic import SyntheticPeer
from contact_center.tools.wsclient import RequestFailed
from recordings.timeline import read_timeline
from routing.models import Channel
from tests.contacts.test_calls import _connect_call, _negotiate, _until

ICE = IceSettings.loopback()


def _events(folder, kind: str) -> list[dict]:  # type: ignore[type-arg]
    if not (folder / "timeline.jsonl").exists():
        return []
    return [e for e in read_timeline(folder).events if e["kind"] == kind]


def test_downgraded_channels() -> None:
    assert downgraded_channels(["video"], Channel.VOICE) == ["voice"]
    assert downgraded_channels(["text", "voice", "video"], Channel.VOICE) == ["text", "voice"]
    assert downgraded_channels(["text", "voice", "video"], Channel.TEXT) == ["text"]
    assert downgraded_channels(["voice"], Channel.TEXT) == ["text"]
    with pytest.raises(ValueError, match="no medium richer than voice"):
        downgraded_channels(["text", "voice"], Channel.VOICE)
    with pytest.raises(ValueError, match="no medium richer than text"):
        downgraded_channels(["text"], Channel.TEXT)


async def test_video_to_voice_to_text_closes_the_files_and_tells_the_other_side(
    server, clients, advisor_factory
):
    customer, advisor, contact_id = await _connect_call(clients, advisor_factory)
    customer_peer = SyntheticPeer(ICE, name="customer")
    advisor_peer = SyntheticPeer(ICE, name="advisor")
    folder = server.app[appkeys.SETTINGS].recordings_dir / contact_id
    try:
        await _negotiate(customer, contact_id, customer_peer)
        await _negotiate(advisor, contact_id, advisor_peer)
        await _until(lambda: customer_peer.stats.stamped >= 20 and advisor_peer.stats.stamped >= 20)

        with pytest.raises(RequestFailed) as refused:  # a field the message does not have
            await customer.request("session.downgrade", contact_id=contact_id, to="text", extra=1)
        assert "extra" in refused.value.message
        with pytest.raises(RequestFailed):  # nothing below text
            await customer.request("session.downgrade", contact_id=contact_id, to="none")

        ack = await advisor.request("session.downgrade", contact_id=contact_id, to="voice")
        assert ack == {"state": "connected"}
        told = await customer.wait_for("session.downgrade", contact_id=contact_id)
        assert told["by"] == "advisor" and told["to"] == "voice"
        state = await customer.wait_for("session.state", contact_id=contact_id, reason="downgraded")
        assert state["channels"] == ["voice"]
        status = await server.app[appkeys.ROUTER].contact_status(contact_id)
        assert status.channel.value == "voice"
        # both video files are finished (trailer written, their close in the timeline)
        await _until(lambda: len(_events(folder, "media_close")) >= 2)
        closed = _events(folder, "media_close")
        assert sorted(e["file"] for e in closed) == ["advisor-video-1.webm", "customer-video-1.webm"]
        assert all(e["frames"] > 0 for e in closed)
        import av

        for name in ("advisor-video-1.webm", "customer-video-1.webm"):
            with av.open(str(folder / name)) as container:
                assert sum(1 for _ in container.demux()) > 5
        with pytest.raises(RequestFailed) as again:
            await customer.request("session.downgrade", contact_id=contact_id, to="voice")
        assert again.value.code == "invalid_state"
        assert "richer than voice" in again.value.message

        # the audio goes on after the video is gone
        before = advisor_peer.stats.frames["audio"]
        await _until(lambda: advisor_peer.stats.frames["audio"] > before + 10)

        # video again (both agree): it is recorded again, into new files
        await customer.request("session.upgrade", contact_id=contact_id, channel="video")
        assert (await advisor.request("session.upgrade", contact_id=contact_id, channel="video"))["agreed"]
        again_files = {"advisor-video-2.webm", "customer-video-2.webm"}
        await _until(lambda: again_files <= {e["file"] for e in _events(folder, "media_open")})

        await customer.request("session.downgrade", contact_id=contact_id, to="text")
        state = await advisor.wait_for("session.state", contact_id=contact_id, channels=["text"])
        assert state["reason"] == "downgraded"
        assert server.app[appkeys.MEDIA].get(contact_id) is None  # the call is closed
        audio = {"advisor-audio-1.webm", "customer-audio-1.webm"}
        every = {*audio, *again_files, "advisor-video-1.webm", "customer-video-1.webm"}
        # every close was reported before the call closed; the timeline file follows the
        # stream a moment later, in the order the files happened to close
        await _until(lambda: every <= {e["file"] for e in _events(folder, "media_close")})
        # the synthetic peers never stopped sending video: only what came while the contact
        # had video was recorded (two legs of it), and every file was closed
        files = sorted(p.name for p in folder.iterdir() if p.suffix == ".webm")
        assert files == sorted(every)
        assert set(files) == {e["file"] for e in _events(folder, "media_close")}
        downgrades = [(e["by"], e["channel"]) for e in _events(folder, "downgrade")]
        assert downgrades == [("advisor", "voice"), ("customer", "text")]
        # the chat goes on
        await customer.request("chat.send", contact_id=contact_id, text="still here")
        await advisor.wait_for("chat.message", contact_id=contact_id, text="still here")
    finally:
        await customer_peer.close()
        await advisor_peer.close()


async def test_media_state_reaches_the_other_party_only(server, clients, advisor_factory):
    customer, advisor, contact_id = await _connect_call(clients, advisor_factory, channels=("voice",))
    await customer.request(
        "media.state", contact_id=contact_id, microphone="on", camera="denied",
        connection="poor", loss_pct=12.5, rtt_ms=340,
    )
    pushed = await advisor.wait_for("media.state", contact_id=contact_id)
    assert pushed["party"] == "customer" and pushed["camera"] == "denied"
    assert pushed["connection"] == "poor" and pushed["loss_pct"] == 12.5
    await asyncio.sleep(0.2)
    assert not [m for m in customer.seen if m["type"] == "media.state"]
    with pytest.raises(RequestFailed) as bad:
        await advisor.request("media.state", contact_id=contact_id, microphone="loud", camera="on")
    assert bad.value.code
    stranger = await clients(guest=True)
    with pytest.raises(RequestFailed) as forbidden:
        await stranger.request("media.state", contact_id=contact_id, microphone="on", camera="none")
    assert forbidden.value.code in ("forbidden", "not_found")
