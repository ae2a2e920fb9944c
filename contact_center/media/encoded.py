"""Encoded taps: an inbound track's assembled frames as received, for recorders (no decoder).

``EncodedSource`` (relay.py) hands every frame it takes from the receiver to its taps, on the
event loop, before anything is decoded. A tap queues at most ``max_queued`` frames so a slow
consumer can neither grow memory nor slow the relay: audio drops its oldest frame; video drops
its whole backlog (the next frames would reference the lost ones) and restarts at a keyframe,
which it requests upstream. ``dropped`` counts both.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiortc.mediastreams import MediaStreamError

if TYPE_CHECKING:
    from contact_center.media.relay import EncodedSource

MAX_QUEUED = {"video": 90, "audio": 150}  # about 3 s of either


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One assembled frame of an inbound track, as the sender encoded it."""

    payload: bytes
    timestamp: int  # RTP clock (``clock_rate`` Hz) of the track, from 0, unwrapped by aiortc
    keyframe: bool  # a decoder can start here (always True for audio)
    codec: str  # mime type, e.g. "video/VP8"
    clock_rate: int
    track_id: str  # the inbound track: changes when the party's track is replaced


class EncodedTap:
    """A bounded feed of one party's inbound ``kind``, following its current track.

    ``async for frame in tap`` (or ``await tap.recv()``) until the call closes or ``stop()``;
    ``recv`` then raises ``MediaStreamError`` and iteration ends.
    """

    def __init__(self, kind: str, *, name: str, max_queued: int | None = None) -> None:
        self.kind = kind
        self.name = name
        self.received = 0
        self.dropped = 0
        self.paused = 0  # frames that arrived while paused (not queued)
        self._paused = False
        self._max = max_queued or MAX_QUEUED.get(kind, 100)
        self._frames: collections.deque[EncodedFrame] = collections.deque()
        self._wake = asyncio.Event()
        self._source: EncodedSource | None = None
        self._need_keyframe = kind == "video"
        self._stopped = False

    @property
    def stopped(self) -> bool:
        return self._stopped

    def attach(self, source: EncodedSource | None) -> None:
        """Take frames from ``source`` from now on (None: from nobody)."""
        if self._source is source:
            return
        if self._source is not None:
            self._source.taps.discard(self)
        self._source = source
        self._need_keyframe = self.kind == "video"
        if source is not None and not self._stopped:
            source.taps.add(self)
            source.request_keyframe(force=True)

    def request_keyframe(self) -> None:
        """Ask the sender for a keyframe (a recorder resuming after a pause needs one)."""
        if self._source is not None:
            self._source.request_keyframe(force=True)

    def pause(self) -> None:
        """Drop what arrives from now on (a paused recording): decided as each frame arrives,
        so that a consumer running late still gets every frame from before the pause, and
        none from during it."""
        self._paused = True

    def resume(self) -> None:
        """Queue frames again; video from the next keyframe, which is asked for."""
        if self._paused:
            self._paused = False
            self._need_keyframe = self.kind == "video"
            self.request_keyframe()

    def _push(self, frame: EncodedFrame) -> None:
        """Called by the source, on the event loop, for every frame."""
        if self._stopped:
            return
        if self._paused:
            self.paused += 1
            return
        if self._need_keyframe:
            if not frame.keyframe:
                if self._source is not None:
                    self._source.request_keyframe()
                return
            self._need_keyframe = False
        if len(self._frames) >= self._max:
            if self.kind == "video":
                self.dropped += len(self._frames)
                self._frames.clear()
                if not frame.keyframe:
                    self.dropped += 1
                    self._need_keyframe = True
                    if self._source is not None:
                        self._source.request_keyframe()
                    return
            else:
                self.dropped += 1
                self._frames.popleft()
        self.received += 1
        self._frames.append(frame)
        self._wake.set()

    async def recv(self) -> EncodedFrame:
        """The next frame; raises ``MediaStreamError`` once stopped and drained."""
        while True:
            if self._frames:
                return self._frames.popleft()
            if self._stopped:
                raise MediaStreamError
            self._wake.clear()
            await self._wake.wait()

    def __aiter__(self) -> EncodedTap:
        return self

    async def __anext__(self) -> EncodedFrame:
        try:
            return await self.recv()
        except MediaStreamError:
            raise StopAsyncIteration from None

    def stop(self) -> None:
        """Detach and end: queued frames can still be read, then iteration ends. Idempotent."""
        if not self._stopped:
            self.attach(None)
            self._stopped = True
            self._wake.set()
