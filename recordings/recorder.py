"""Record a call's inbound tracks as they were received: encoded frames -> ``recordings.mux``.

One task per (party, kind) reads a ``FrameSource`` (the media layer's encoded tap) and writes each inbound track to its own
file, ``<party>-<kind>-<n>.webm`` (``.mkv`` for H.264), starting a new file when the party's
track is replaced (renegotiation, reconnection). A video file's frame size comes from its
first keyframe (VP8 key frame header, or H.264 SPS: ``recordings.bitstream.frame_dimensions``).
``TrackWriter.write`` only queues, so the event loop never waits on the disk; closing a file
(trailer) runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from recordings.mux import TrackWriter, UnsupportedCodec, suffix_for

logger = logging.getLogger(__name__)


class Frame(Protocol):
    """One assembled frame of an inbound track, as the sender encoded it."""

    @property
    def payload(self) -> bytes: ...
    @property
    def timestamp(self) -> int: ...  # RTP clock of the track
    @property
    def keyframe(self) -> bool: ...
    @property
    def codec(self) -> str: ...  # mime type, e.g. "video/VP8"
    @property
    def clock_rate(self) -> int: ...
    @property
    def track_id(self) -> str: ...  # changes when the party's track is replaced


class FrameSource(Protocol):
    """Frames of one party's inbound kind until the call closes (``async for``)."""

    def __aiter__(self) -> AsyncIterator[Frame]: ...


def next_index(directory: Path, party: str, kind: str) -> int:
    """The next free number of ``<party>-<kind>-<n>.*`` in ``directory``: a later leg of the
    same party (a transfer, a reconnection) never reuses the name of an earlier one."""
    pattern = re.compile(rf"^{re.escape(party)}-{re.escape(kind)}-(\d+)\.")
    taken = [int(m.group(1)) for f in directory.glob(f"{party}-{kind}-*") if (m := pattern.match(f.name))]
    return max(taken, default=0) + 1


RecorderEvent = Callable[[str, dict[str, Any]], Awaitable[None]]
"""``on_event(kind, fields)``: ``media_open`` / ``media_close`` per file, ``recorder_failure``."""


class CallRecorder:
    """Owns the recording tasks and writers of one call; ``files`` grows as tracks appear.

    ``on_event`` hears of every file opened (``media_open``) and closed (``media_close``, with
    its counters) and of every failure (``recorder_failure`` with ``stage`` ``open`` or
    ``write``): a file that cannot be created or written is never a silent gap. It is awaited
    by the recording task, so a ``media_close`` is reported before ``wait()`` returns.

    ``pause()`` stops writing media until ``resume()``; video then restarts at a keyframe,
    asked of the sender. A tap that can ``pause()`` itself drops frames as they *arrive* (so a
    recorder running late writes nothing received during the pause and loses nothing from
    before it); from any other, frames are dropped as they are read. ``paused_frames`` counts
    both. The file's timestamps keep the sender's clock, so the gap has its real length.
    """

    def __init__(
        self,
        directory: Path,
        *,
        contact_id: str,
        on_event: RecorderEvent | None = None,
        paused: bool = False,
    ) -> None:
        self.directory = Path(directory)
        self.contact_id = contact_id
        self.files: list[Path] = []
        self.writers: list[TrackWriter] = []
        self._dropped_paused = 0
        self.failures: list[dict[str, Any]] = []
        self._on_event = on_event
        self._paused = paused
        self._resumed: set[TrackWriter] = set()  # writers that must wait for a keyframe
        self._taps: list[FrameSource] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._task_of: dict[int, asyncio.Task[None]] = {}  # by id() of its tap (kept in _taps)

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def paused_frames(self) -> int:
        """Frames not written because the recording was paused."""
        return self._dropped_paused + sum(int(getattr(t, "paused", 0)) for t in self._taps)

    def pause(self) -> None:
        """Stop writing media frames (idempotent)."""
        self._paused = True
        for tap in self._taps:
            if _pausable(tap):
                tap.pause()  # type: ignore[attr-defined]

    def resume(self) -> None:
        """Write media frames again; video waits for a keyframe (idempotent)."""
        if not self._paused:
            return
        self._paused = False
        for writer in self.writers:
            if writer.kind == "video":
                writer.need_keyframe()
        for tap in self._taps:
            if _pausable(tap):
                tap.resume()  # type: ignore[attr-defined]
            request = getattr(tap, "request_keyframe", None)
            if callable(request):
                request()

    def record(self, party: str, kind: str, tap: FrameSource) -> None:
        """Write every track ``tap`` delivers until it ends (the call closes)."""
        self._taps.append(tap)
        if self._paused and _pausable(tap):
            tap.pause()  # type: ignore[attr-defined]
        task = asyncio.create_task(
            self._run(party, kind, tap), name=f"record {self.contact_id}/{party}/{kind}"
        )
        self._tasks.add(task)
        self._task_of[id(tap)] = task
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _: self._task_of.pop(id(tap), None))

    async def drained(self, taps: list[Any]) -> None:
        """Wait until the files of ``taps`` (stopped by the caller) are closed and reported."""
        tasks = [task for tap in taps if (task := self._task_of.get(id(tap))) is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def wait(self) -> None:
        """Wait until every task has closed its files (the taps must be stopped first)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def stats(self) -> dict[str, dict[str, object]]:
        """Per file: frames written, dropped by the writer, skipped before a keyframe, error."""
        return {
            writer.path.name: {
                "frames_written": writer.frames_written,
                "dropped": writer.dropped,
                "skipped": writer.skipped,
                "error": repr(writer.error) if writer.error else None,
            }
            for writer in self.writers
        }

    async def _report(self, kind: str, **fields: Any) -> None:
        if kind == "recorder_failure":
            self.failures.append(fields)
        if self._on_event is None:
            return
        try:
            await self._on_event(kind, fields)
        except Exception:  # a broken listener must not stop the recording
            logger.exception("recording %s: on_event(%s) failed", self.contact_id, kind)

    async def _run(self, party: str, kind: str, tap: FrameSource) -> None:
        writer: TrackWriter | None = None
        track_id = ""  # the track ``writer`` records
        refused: str | None = None  # a track that cannot be recorded (codec, disk)
        reported: TrackWriter | None = None  # the writer whose error was reported
        pausable = _pausable(tap)
        try:
            async for frame in tap:
                if self._paused and not pausable:
                    self._dropped_paused += 1
                    continue
                if writer is not None and track_id != frame.track_id:
                    await self._close(party, kind, writer, reported is writer)
                    writer = None
                if writer is None and refused != frame.track_id:
                    try:
                        writer = await self._open(party, kind, frame)
                        track_id = frame.track_id
                    except (UnsupportedCodec, OSError) as error:
                        logger.exception("recording %s/%s not possible", self.contact_id, party)
                        refused = frame.track_id
                        await self._report(
                            "recorder_failure",
                            stage="open",
                            party=party,
                            media=kind,
                            track=frame.track_id,
                            codec=frame.codec,
                            error=f"{type(error).__name__}: {error}",
                        )
                if writer is not None:
                    writer.write(frame.payload, frame.timestamp, frame.keyframe)
                    if writer.error is not None and reported is not writer:
                        reported = writer
                        await self._report(
                            "recorder_failure",
                            stage="write",
                            party=party,
                            media=kind,
                            file=writer.path.name,
                            error=f"{type(writer.error).__name__}: {writer.error}",
                        )
        finally:
            if writer is not None:
                # Shielded: a cancelled recorder must still finish the file it started.
                await asyncio.shield(self._close(party, kind, writer, reported is writer))

    async def _open(self, party: str, kind: str, frame: Frame) -> TrackWriter:
        suffix = suffix_for(frame.codec)
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{party}-{kind}-{next_index(self.directory, party, kind)}{suffix}"
        # Claimed here, on the event loop, before the writer's thread opens it: no later leg
        # can pick the same name, and an existing file is never written over.
        path.touch(exist_ok=False)
        writer = TrackWriter(
            path,
            "video" if kind == "video" else "audio",
            frame.codec,
            frame.clock_rate,
            metadata={
                "CONTACT": self.contact_id,
                "PARTY": party,
                "TRACK": frame.track_id,
                # Wall clock of the first frame: aligns the parties' files on replay.
                "STARTED_AT": datetime.now(UTC).isoformat(timespec="milliseconds"),
            },
        )
        self.writers.append(writer)
        self.files.append(path)
        logger.info("recording %s/%s %s -> %s", self.contact_id, party, kind, path)
        await self._report(
            "media_open",
            party=party,
            media=kind,
            file=path.name,
            track=frame.track_id,
            codec=frame.codec,
        )
        return writer

    async def _close(self, party: str, kind: str, writer: TrackWriter, reported: bool) -> None:
        await asyncio.to_thread(writer.close)
        error = writer.error
        if error is not None and not reported:
            await self._report(
                "recorder_failure",
                stage="write",
                party=party,
                media=kind,
                file=writer.path.name,
                error=f"{type(error).__name__}: {error}",
            )
        await self._report(
            "media_close",
            party=party,
            media=kind,
            file=writer.path.name,
            frames=writer.frames_written,
            dropped=writer.dropped,
            skipped=writer.skipped,
            duration_s=round(writer.duration, 3),
            error=f"{type(error).__name__}: {error}" if error else None,
        )


def _pausable(tap: object) -> bool:
    return callable(getattr(tap, "pause", None)) and callable(getattr(tap, "resume", None))
