"""Record a call's inbound tracks as they were received: encoded taps -> ``recordings.mux``.

One task per (party, kind) reads an ``EncodedTap`` and writes each inbound track to its own
file, ``<party>-<kind>-<n>.webm`` (``.mkv`` for H.264), starting a new file when the party's
track is replaced (renegotiation, reconnection). A video file's frame size comes from its
first keyframe (VP8 key frame header, or H.264 SPS: ``recordings.mux.frame_dimensions``).
``TrackWriter.write`` only queues, so the event loop never waits on the disk; closing a file
(trailer) runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path

from contact_center.media.encoded import EncodedFrame, EncodedTap
from recordings.mux import TrackWriter, UnsupportedCodec, suffix_for

logger = logging.getLogger(__name__)


class CallRecorder:
    """Owns the recording tasks and writers of one call; ``files`` grows as tracks appear."""

    def __init__(self, directory: Path, *, contact_id: str) -> None:
        self.directory = Path(directory)
        self.contact_id = contact_id
        self.files: list[Path] = []
        self.writers: list[TrackWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def record(self, party: str, kind: str, tap: EncodedTap) -> None:
        """Write every track ``tap`` delivers until it ends (the call closes)."""
        task = asyncio.create_task(
            self._run(party, kind, tap), name=f"record {self.contact_id}/{party}/{kind}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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

    async def _run(self, party: str, kind: str, tap: EncodedTap) -> None:
        writer: TrackWriter | None = None
        track_id = ""  # the track ``writer`` records
        refused: str | None = None  # a track whose codec cannot be recorded as is
        try:
            async for frame in tap:
                if writer is not None and track_id != frame.track_id:
                    await asyncio.to_thread(writer.close)
                    writer = None
                if writer is None and refused != frame.track_id:
                    try:
                        writer = self._open(party, kind, frame)
                        track_id = frame.track_id
                    except UnsupportedCodec:
                        logger.exception("recording %s/%s not possible", self.contact_id, party)
                        refused = frame.track_id
                if writer is not None:
                    writer.write(frame.payload, frame.timestamp, frame.keyframe)
        finally:
            if writer is not None:
                # Shielded: a cancelled recorder must still finish the file it started.
                await asyncio.shield(asyncio.to_thread(writer.close))

    def _open(self, party: str, kind: str, frame: EncodedFrame) -> TrackWriter:
        index = 1 + sum(1 for w in self.writers if w.path.name.startswith(f"{party}-{kind}-"))
        path = self.directory / f"{party}-{kind}-{index}{suffix_for(frame.codec)}"
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
        return writer
