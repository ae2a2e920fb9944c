"""The bot's voice track: paced 20 ms frames, speech then silence, barge-in stops it."""

from __future__ import annotations

import asyncio

import av
import pytest
from aiortc.mediastreams import MediaStreamError

from chatbot.speech.audio import rms
from chatbot.speech.tts import Speech
from contact_center.bot.voice import _Speaker
from contact_center.media.fanout import Subscription


async def test_speaker_plays_then_falls_silent_and_hushes() -> None:
    speaker = _Speaker(rate=48000)
    tone = (b"\x00\x40\x00\xc0" * 4800)  # 0.2 s of a loud square wave
    speaker.say(Speech(tone, 48000))
    frames = [await speaker.recv() for _ in range(12)]
    loud = [rms(bytes(f.planes[0])[: f.samples * 2]) > 1000 for f in frames]
    assert loud == [True] * 10 + [False] * 2
    assert [f.pts for f in frames] == [960 * i for i in range(12)]
    speaker.say(Speech(tone, 48000))
    await speaker.recv()
    assert speaker.hush() and not speaker.speaking  # barge-in
    assert rms(bytes((await speaker.recv()).planes[0])[:1920]) == 0
    speaker.stop()


async def test_a_queued_subscription_keeps_every_frame_through_a_stall() -> None:
    sub = Subscription("audio", copy=False, name="t", max_queued=3)
    latest = Subscription("audio", copy=False, name="t1")
    frames = []
    for i in range(4):
        frame = av.AudioFrame(format="s16", layout="mono", samples=960)
        frame.pts = i
        frames.append(frame)
        sub._push(frame)
        latest._push(frame)
    assert [(await sub.recv()).pts for _ in range(3)] == [1, 2, 3] and sub.frames_dropped == 1
    assert (await latest.recv()).pts == 3 and latest.frames_dropped == 3
    sub.stop()
    with pytest.raises(MediaStreamError):
        await asyncio.wait_for(sub.recv(), 1)
