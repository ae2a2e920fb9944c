"""timeline.jsonl: append-only, one masked event a line, torn last lines survived and reported."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from recordings.manifest import MANIFEST, TIMELINE, ManifestExists, build_manifest, write_manifest
from recordings.timeline import (
    KINDS,
    TimelineSealed,
    TimelineWriter,
    format_time,
    read_timeline,
)
from tests.recordings.sealing import ROOT
from tests.recordings.timeline_worker import text_for

CARD = "4111 1111 1111 1111"


class Clock:
    """A clock that moves 1.5 ms a call, from a fixed instant."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 2, 10, 0, 0, 123456, tzinfo=UTC)

    def __call__(self) -> datetime:
        value = self.now
        self.now += timedelta(microseconds=1500)
        return value


def test_events_are_lines_with_time_seq_kind_and_masked_text(tmp_path: Path) -> None:
    directory = tmp_path / "c1"
    with TimelineWriter(directory, clock=Clock()) as writer:
        for kind in sorted(KINDS):
            writer.append(kind, note=kind)
        chat = writer.append(
            "chat", who="customer", text=f"my card is {CARD}\nthanks\u2028bye\r",
            attachments=[{"caption": "卡号 5555555555554444"}], amount=12.5, order="1234567890123",
        )
        writer.append("routing", queue="billing", at=datetime(2026, 12, 2, 9, 0, tzinfo=UTC))
        assert writer.seq == len(KINDS) + 2
    raw = (directory / TIMELINE).read_bytes()
    assert b"4111" not in raw.replace(b"**** **** **** 1111", b"") and b"5555555555554444" not in raw
    assert raw.count(b"\n") == len(KINDS) + 2  # one line per event, text line breaks escaped
    lines = [json.loads(line) for line in raw.decode("utf-8").split("\n")[:-1]]
    assert [line["seq"] for line in lines] == list(range(1, len(KINDS) + 3))
    assert [line["kind"] for line in lines[: len(KINDS)]] == sorted(KINDS)
    assert lines[0]["t"] == "2026-12-02T10:00:00.123Z" and lines[1]["t"] == "2026-12-02T10:00:00.124Z"
    assert lines[-1]["t"] == "2026-12-02T09:00:00.000Z"
    assert lines[-2] == chat
    assert chat["text"] == "my card is **** **** **** 1111\nthanks\u2028bye\r"
    assert chat["attachments"] == [{"caption": "卡号 ************4444"}]
    assert chat["order"] == "1234567890123" and chat["amount"] == 12.5  # not a card: kept
    read = read_timeline(directory)
    assert read.ok and read.events == lines and read.problems == []


def test_bad_events_write_nothing(tmp_path: Path) -> None:
    with TimelineWriter(tmp_path) as writer:
        writer.append("event", name="start")
        for kind, fields in (
            ("Chat", {}), ("", {}), ("chat line", {}),
            ("chat", {"seq": 9}), ("chat", {"t": "now"}),
            ("chat", {"value": float("nan")}), ("chat", {"value": {1, 2}}),
        ):
            with pytest.raises(ValueError):
                writer.append(kind, **fields)
        writer.append("event", name="end")
    events = read_timeline(tmp_path).events
    assert [(e["seq"], e["name"]) for e in events] == [(1, "start"), (2, "end")]
    with pytest.raises(ValueError, match="closed"):
        writer.append("event")
    with pytest.raises(ValueError, match="naive"):
        format_time(datetime(2026, 1, 1))


def test_threads_share_one_sequence(tmp_path: Path) -> None:
    with TimelineWriter(tmp_path) as writer:
        def run(name: str) -> None:
            for index in range(200):
                writer.append("chat", who=name, index=index)

        threads = [threading.Thread(target=run, args=(f"w{n}",)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    read = read_timeline(tmp_path)
    assert read.ok and [e["seq"] for e in read.events] == list(range(1, 801))
    for name in ("w0", "w1", "w2", "w3"):  # each thread's own events in its own order
        assert [e["index"] for e in read.events if e["who"] == name] == list(range(200))


def test_a_sealed_directory_is_never_written_again(tmp_path: Path) -> None:
    directory = tmp_path / "c2"
    writer = TimelineWriter(directory)
    writer.append("chat", text="hello")
    manifest = build_manifest(directory, metadata={}, pauses=[], previous_hash=None, status="complete")
    write_manifest(directory, manifest)
    before = (directory / TIMELINE).read_bytes()
    with pytest.raises(TimelineSealed):  # the open writer stops at the seal
        writer.append("chat", text="too late")
    writer.close()
    with pytest.raises(ManifestExists, match="sealed"):  # TimelineSealed is a ManifestExists
        TimelineWriter(directory)
    assert (directory / TIMELINE).read_bytes() == before
    assert manifest["timeline"]["size"] == len(before)
    assert (directory / MANIFEST).exists()


def test_reopen_after_a_torn_line_carries_on(tmp_path: Path) -> None:
    with TimelineWriter(tmp_path) as writer:
        for index in range(3):
            writer.append("chat", text=f"m{index}")
    path = tmp_path / TIMELINE
    whole = path.read_bytes()
    fragment = b'{"t":"2026-12-02T10:00:09.000Z","seq":4,"kind":"chat","text":"half'
    path.write_bytes(whole + fragment)  # what a process killed inside write() leaves
    read = read_timeline(path)
    assert [e["seq"] for e in read.events] == [1, 2, 3] and not read.damaged
    assert read.torn == fragment and read.torn_offset == len(whole) and not read.ok
    assert read.problems == [f"{TIMELINE}: torn last line at byte {len(whole)} ({len(fragment)} bytes without an end of line)"]
    with TimelineWriter(tmp_path) as writer:
        assert writer.seq == 4  # 3, then the recorder_failure event about the torn line
        writer.append("resume")
    again = read_timeline(path)
    assert path.read_bytes().startswith(whole + fragment + b"\n")  # the fragment's bytes stay
    assert again.torn is None and [line for line, _ in again.damaged] == [4]
    assert [(e["seq"], e["kind"]) for e in again.events] == [
        (1, "chat"), (2, "chat"), (3, "chat"), (4, "recorder_failure"), (5, "resume"),
    ]
    assert again.events[3]["torn_offset"] == len(whole) and again.events[3]["torn_bytes"] == len(fragment)


def test_reader_reports_damage_and_goes_on(tmp_path: Path) -> None:
    path = tmp_path / TIMELINE
    path.write_bytes(
        b'{"t":"x","seq":1,"kind":"chat"}\n'
        b"not json\n"
        b'["a list"]\n'
        b'{"seq":"2","kind":"chat"}\n'
        b'{"t":"x","seq":1,"kind":"chat"}\n'
        b"\xff\xfe\n"
        b'{"t":"x","seq":7,"kind":"bot"}\n'
    )
    read = read_timeline(path)
    assert [e["seq"] for e in read.events] == [1, 1, 7] and read.torn is None
    assert [line for line, _ in read.damaged] == [2, 3, 4, 5, 6]
    assert "seq 1 does not follow 1" in dict(read.damaged)[5]
    assert read_timeline(tmp_path).events == read.events  # a directory works too
    path.write_bytes(b"")
    assert read_timeline(path).ok and read_timeline(path).events == []


@pytest.mark.slow
def test_sigkill_mid_write_leaves_every_complete_line_readable(tmp_path: Path) -> None:
    worker = str(Path(__file__).with_name("timeline_worker.py"))
    env = dict(os.environ, PYTHONPATH=str(ROOT))  # this tree's recordings, not an installed one
    torn = 0
    # Plain writes first, then writes slowed down so that the kill lands inside a line.
    for attempt, mode in enumerate(["fast", "slow", "slow", "slow"]):
        directory = tmp_path / f"run{attempt}"
        proc = subprocess.Popen(
            [sys.executable, worker, str(directory), mode], cwd=ROOT, env=env,
            stdout=subprocess.PIPE,
        )
        assert proc.stdout is not None
        reported = 0
        want = (41 if mode == "fast" else 7) + 2 * attempt  # odd: the next line is a big one
        try:
            for line in proc.stdout:
                reported = int(line)
                if reported >= want:
                    break
            time.sleep(0.02 + 0.01 * attempt)  # into the next line's write, when slowed
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL and reported >= want
        read = read_timeline(directory)
        # Every line the worker had finished (and any finished before the kill landed).
        assert len(read.events) >= reported and not read.damaged, (mode, read.problems)
        assert [e["seq"] for e in read.events] == list(range(1, len(read.events) + 1))
        for event in read.events:  # each line whole, and masked
            assert event["text"] == text_for(event["seq"]).replace(CARD, "**** **** **** 1111")
        if read.torn is not None:  # the kill landed inside a write: the next line, cut
            torn += 1
            assert read.torn.startswith(b'{"t":"') and read.torn_offset is not None
            assert f'"seq":{len(read.events) + 1},'.encode() in read.torn
            assert len(read.torn) < len(text_for(len(read.events) + 1))
        assert b"4111 1111 1111 1111" not in (directory / TIMELINE).read_bytes()
    # At 1 ms per 4 KiB a big line takes ~65 ms to write against ~1 ms to make, and the kill
    # comes 20-50 ms after the line before it: it lands inside the write unless the machine
    # stalls the worker for that long three times.
    assert torn >= 1
