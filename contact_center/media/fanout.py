"""Fan one inbound track out to several consumers without ever letting a queue grow.

aiortc's ``MediaRelay`` only starts reading its source when a consumer first calls ``recv``, its
reader task has no owner, and every consumer gets the *same* frame object, which aiortc's VP8
encoder mutates (``pict_type``) in a worker thread while a recorder may be encoding it too. Here:

* ``TrackFanout`` owns one reader task per inbound track that runs from ``start`` to ``stop``
  whether or not anybody listens, so aiortc's unbounded receive queue is always drained;
* each ``Subscription`` keeps only the latest frame (older ones are dropped, like
  ``MediaRelay(buffered=False)``), so a slow consumer loses frames instead of growing memory;
* a subscription can be moved from one fan-out to another (the other party renegotiated), and
  subscriptions made with ``copy=True`` get their own copy of every frame they read.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from fractions import Fraction
from typing import Protocol, cast

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.video.plane import VideoPlane

logger = logging.getLogger(__name__)

Frame = av.VideoFrame | av.AudioFrame


def copy_frame(frame: Frame) -> Frame:
    """An independent copy of a decoded audio or video frame (same format, pts and time base)."""
    copy: Frame
    if isinstance(frame, av.VideoFrame):
        copy = av.VideoFrame(frame.width, frame.height, frame.format.name)
    else:
        copy = av.AudioFrame(
            format=frame.format.name, layout=frame.layout.name, samples=frame.samples
        )
        copy.sample_rate = frame.sample_rate
    for source, target in zip(frame.planes, copy.planes, strict=True):
        if source.buffer_size == target.buffer_size:
            target.update(cast(bytes, memoryview(source)))
        elif isinstance(frame, av.AudioFrame):  # decoders over-allocate: copy the samples only
            target.update(cast(bytes, memoryview(source)[: target.buffer_size]))
        else:  # different line padding: copy row by row
            _copy_rows(cast(VideoPlane, source), cast(VideoPlane, target))
    copy.pts = frame.pts
    copy.time_base = frame.time_base or Fraction(1, 90000)
    return copy


def _copy_rows(source: VideoPlane, target: VideoPlane) -> None:
    src, dst = memoryview(source), memoryview(target)
    width = min(source.line_size, target.line_size)
    for row in range(target.height):
        dst[row * target.line_size : row * target.line_size + width] = src[
            row * source.line_size : row * source.line_size + width
        ]


async def cancel_and_wait(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait for it; re-raise only if *we* are being cancelled."""
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise


class FrameSink(Protocol):
    """What a fan-out hands frames to: a ``Subscription`` or an encoded relay's track."""

    def _push(self, frame: Frame) -> None: ...

    def attach(self, source: TrackFanout | None) -> None: ...


class Subscription(MediaStreamTrack):
    """A consumer's view of a fan-out: ``recv`` returns the latest frame, waiting for the next.

    ``max_queued`` > 1 keeps that many unread frames instead (oldest dropped first): a speech
    recogniser needs every audio frame through a short stall, a relay only the newest.

    Before it is attached to a fan-out, or between two fan-outs, ``recv`` simply waits: a
    forwarding sender then sends nothing, which the far end shows as a frozen/blank picture.
    """

    def __init__(self, kind: str, *, copy: bool, name: str, max_queued: int = 1) -> None:
        super().__init__()
        self.kind = kind
        self.name = name
        self._copy = copy
        self._frames: collections.deque[Frame] = collections.deque(maxlen=max(1, max_queued))
        self._new_frame = asyncio.Event()
        self._source: TrackFanout | None = None
        self.frames_dropped = 0

    def attach(self, source: TrackFanout | None) -> None:
        """Take frames from ``source`` from now on (None: from nobody)."""
        if self._source is source:
            return
        if self._source is not None:
            self._source._subscribers.discard(self)
        self._source = source
        if source is not None and self.readyState == "live":
            source._subscribers.add(self)
        logger.debug("subscription %s attached to %s", self.name, source and source.name)

    def _push(self, frame: Frame) -> None:
        if len(self._frames) == self._frames.maxlen:
            self.frames_dropped += 1
        self._frames.append(frame)
        self._new_frame.set()

    async def recv(self) -> Frame:
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            if self._frames:
                frame = self._frames.popleft()
                return copy_frame(frame) if self._copy else frame
            self._new_frame.clear()
            await self._new_frame.wait()

    def stop(self) -> None:
        """Detach and end: a pending ``recv`` raises ``MediaStreamError``. Idempotent."""
        if self.readyState == "live":
            self.attach(None)
            super().stop()
            self._frames.clear()
            self._new_frame.set()


class TrackFanout:
    """Reads one track for its whole life and hands each frame to every attached subscription."""

    def __init__(self, source: MediaStreamTrack, *, name: str) -> None:
        self.source = source
        self.name = name
        self.kind = source.kind
        self.frames_read = 0
        self._subscribers: set[FrameSink] = set()
        self._task: asyncio.Task[None] | None = None
        self._ended = asyncio.Event()

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    def start(self) -> None:
        """Start draining the source (the task is owned here and ended by ``stop``)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"fanout {self.name}")
            logger.debug("fanout %s started", self.name)

    async def _run(self) -> None:
        try:
            while True:
                try:
                    frame = await self.source.recv()
                except MediaStreamError:
                    break
                if not isinstance(frame, av.VideoFrame | av.AudioFrame):
                    continue  # aiortc only hands decoded frames to tracks; be safe anyway
                self.frames_read += 1
                for subscriber in tuple(self._subscribers):
                    subscriber._push(frame)
        finally:
            self._ended.set()
            logger.debug("fanout %s ended after %d frames", self.name, self.frames_read)

    async def stop(self) -> None:
        """Cancel and await the reader; subscriptions stay open (they may be re-attached)."""
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)
        for subscriber in tuple(self._subscribers):
            subscriber.attach(None)
        self._ended.set()
