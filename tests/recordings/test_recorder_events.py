"""Claims on recording directories, and what the recorder tells: files opened and closed,
failures, pauses. Real processes, real aiortc peers on loopback, PyAV to read the files."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import av
import pytest

from contact_center.media.call import CallMedia
from contact_center.media.ice import IceSettings
from contact_center.tools.synthetic import SyntheticPeer, read_stamp
from recordings import mux
from recordings.claim import CLAIMS, Claim, ClaimHeld, unsealed
from recordings.manifest import MANIFEST, build_manifest, read_manifest, write_manifest
from recordings.redact import mask_fields
from recordings.seal import seal_contact
from recordings.storage import LocalStorage
from recordings.timeline import TimelineWriter, pauses_of, read_timeline
from tests.helpers import negotiate, wait_for
from tests.recordings.sealing import ROOT, record_contact, sessions  # noqa: F401

CARD = "4111 1111 1111 1111"


# ---------------------------------------------------------------- claims


def test_a_claim_is_exclusive_and_dies_with_its_process(tmp_path: Path) -> None:
    mine = Claim.take(tmp_path, "c1")
    with pytest.raises(ClaimHeld):
        Claim.take(tmp_path, "c1")  # a second claim in the same process is refused too
    mine.release()
    Claim.take(tmp_path, "c1").release()

    holder = subprocess.Popen(
        [sys.executable, "-m", "tests.recordings.claim_holder", str(tmp_path), "c2"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "claimed"
        with pytest.raises(ClaimHeld):
            Claim.take(tmp_path, "c2")
        assert [c.contact_id for c in unsealed(tmp_path)] == []  # its directory is live
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
    # the kernel dropped the lock with the process: the directory is now anyone's to seal
    found = list(unsealed(tmp_path))
    assert [c.contact_id for c in found] == ["c2"]
    found[0].release()


def test_unsealed_skips_sealed_directories_and_the_claims_themselves(tmp_path: Path) -> None:
    for name in ("a", "b"):
        with TimelineWriter(tmp_path / name) as writer:
            writer.append("event", note=name)
    write_manifest(tmp_path / "b", build_manifest(tmp_path / "b", metadata={}, pauses=[], previous_hash=None, status="complete"))
    Claim.take(tmp_path, "a").release()  # leaves .claims/ behind
    assert (tmp_path / CLAIMS).is_dir()
    claims = list(unsealed(tmp_path))
    assert [c.contact_id for c in claims] == ["a"]
    for claim in claims:
        claim.release()
    assert LocalStorage(tmp_path).contacts() == ["a", "b"]  # .claims is not a contact
    with pytest.raises(ValueError):
        Claim.take(tmp_path, "../x")


# ---------------------------------------------------------------- pauses and masking


def test_pauses_are_read_from_the_timeline(tmp_path: Path) -> None:
    with TimelineWriter(tmp_path) as writer:
        writer.append("pause", pause_id="p1", by="user:7", reason="card being read")
        writer.append("chat", text="x")
        writer.append("resume", pause_id="p1", by="system", reason="limit")
        writer.append("pause", pause_id="p2", by="user:7", reason=f"again {CARD}")
    events = read_timeline(tmp_path).events
    spans = pauses_of(events)
    assert [(s["id"], s["by"], s["resumed_by"]) for s in spans] == [("p1", "user:7", "system"), ("p2", "user:7", None)]
    assert spans[0]["from"] == events[0]["t"] and spans[0]["to"] == events[2]["t"]
    assert spans[1]["to"] is None and "4111" not in spans[1]["reason"]


async def test_seal_masks_card_numbers_in_the_metadata_and_pauses(
    tmp_path: Path, sessions  # noqa: F811
) -> None:
    directory = record_contact(tmp_path / "c1")
    result = await seal_contact(
        directory, sessions,
        metadata={"outcome": f"customer read {CARD}", "notes": [CARD]},
        pauses=[{"reason": CARD}],
    )
    raw = (directory / MANIFEST).read_text(encoding="utf-8")
    assert "4111 1111" not in raw and result.manifest["metadata"] == mask_fields(
        {"outcome": f"customer read {CARD}", "notes": [CARD]}
    )
    assert read_manifest(raw.encode())["pauses"] == [{"reason": "**** **** **** 1111"}]


# ---------------------------------------------------------------- the recorder's events


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, kind: str, fields: dict[str, Any]) -> None:
        self.seen.append((kind, fields))

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [f for k, f in self.seen if k == kind]


def stamps(path: Path) -> list[tuple[float, int]]:
    """(time in s, painted counter) of every decoded picture of a video file."""
    found = []
    with av.open(str(path)) as container:
        for frame in container.decode(container.streams.video[0]):
            stamp = read_stamp(frame)
            if stamp is not None and frame.time is not None:
                found.append((frame.time, stamp.counter))
    return found


async def test_paused_frames_are_not_written_and_video_resumes_at_a_keyframe(
    ice: IceSettings, tmp_path: Path
) -> None:
    events = Events()
    call = CallMedia("paused", ice)
    customer, advisor = SyntheticPeer(ice, name="customer"), SyntheticPeer(ice, name="advisor")
    call.start_recording(tmp_path, on_event=events)
    recorder = call.recorder
    assert recorder is not None
    try:
        await negotiate(call, "customer", customer)
        await negotiate(call, "advisor", advisor)
        await wait_for(lambda: len(events.of("media_open")) == 4, 20)
        await asyncio.sleep(1.0)
        recorder.pause()
        paused_at = advisor.stats.stamped
        await asyncio.sleep(2.0)
        skipped = advisor.stats.stamped - paused_at  # what the customer sent meanwhile
        recorder.resume()
        await asyncio.sleep(1.5)
    finally:
        await call.close()
        await customer.close()
        await advisor.close()
    assert recorder.paused_frames > 0 and skipped > 0
    video = stamps(tmp_path / "customer-video-1.webm")
    counters = [c for _, c in video]
    assert counters == sorted(counters)
    gaps = [(b[0] - a[0], b[1] - a[1]) for a, b in zip(video, video[1:], strict=False)]
    time_gap, counter_gap = max(gaps)
    # the pause is a hole, of its real length (frame counts vary with the machine's load)
    assert time_gap > 1.5 and counter_gap >= max(2, skipped // 2), (gaps, skipped)
    after = [t for t, _ in video if t > max(t for t, _ in video) - 1.0]
    assert len(after) > 3  # and recording went on after it, decodable (from a keyframe)
    audio = []
    with av.open(str(tmp_path / "customer-audio-1.webm")) as container:
        audio = [float(p.pts * p.time_base) for p in container.demux() if p.size and p.pts is not None]
    assert max(b - a for a, b in zip(audio, audio[1:], strict=False)) > 1.5
    closed = events.of("media_close")
    assert sorted(c["file"] for c in closed) == sorted(p.name for p in tmp_path.glob("*.webm"))
    assert all(c["frames"] > 0 and c["error"] is None for c in closed)
    assert events.of("recorder_failure") == []


async def test_a_file_that_cannot_be_opened_or_written_is_reported(
    ice: IceSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The tests run as root, whom a read-only directory does not stop, and a full disk cannot be
    # made here without privileges we will not use: the file operations are made to fail with
    # the OSError the kernel would give (the only stand-ins in this test).
    real_touch = Path.touch

    def touch(self: Path, *args: Any, **kwargs: Any) -> None:
        if self.name.startswith("advisor-video"):
            raise PermissionError(13, "Permission denied", str(self))
        real_touch(self, *args, **kwargs)

    real_open = mux.TrackWriter._open

    def open_(self: mux.TrackWriter) -> Any:
        if self.path.name.startswith("customer-audio"):
            raise OSError(28, "No space left on device", str(self.path))
        return real_open(self)

    monkeypatch.setattr(Path, "touch", touch)
    monkeypatch.setattr(mux.TrackWriter, "_open", open_)
    events = Events()
    call = CallMedia("failing", ice)
    customer, advisor = SyntheticPeer(ice, name="customer"), SyntheticPeer(ice, name="advisor")
    call.start_recording(tmp_path, on_event=events)
    try:
        await negotiate(call, "customer", customer)
        await negotiate(call, "advisor", advisor)
        await wait_for(lambda: len(events.of("recorder_failure")) >= 2, 20)
        await asyncio.sleep(0.5)
    finally:
        await call.close()
        await customer.close()
        await advisor.close()
    failures = {(f["stage"], f["party"], f["media"]): f for f in events.of("recorder_failure")}
    assert set(failures) == {("open", "advisor", "video"), ("write", "customer", "audio")}
    assert "Permission denied" in failures[("open", "advisor", "video")]["error"]
    assert "No space left" in failures[("write", "customer", "audio")]["error"]
    assert not (tmp_path / "advisor-video-1.webm").exists()
    closed = {c["file"]: c for c in events.of("media_close")}
    assert closed["customer-audio-1.webm"]["frames"] == 0 and closed["customer-audio-1.webm"]["error"]
    assert closed["customer-video-1.webm"]["frames"] > 0
