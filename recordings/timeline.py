"""A contact's ``timeline.jsonl``: what happened during the contact, one JSON object a line.

Every line is ``{"t": ..., "seq": ..., "kind": ..., <fields>}``: ``t`` is the time in UTC,
ISO 8601 with milliseconds and ``Z`` (``2026-12-02T10:00:00.123Z``), ``seq`` counts 1, 2, 3...
in the order lines were written (also across a reopen), ``kind`` is one of ``KINDS`` or any other
lower-case word (``[a-z][a-z0-9_]*``). Every string among the fields, however deep, has its card
numbers masked (``redact.mask_card_numbers``) before it is written, so a PAN never reaches the
disk. JSON escapes line breaks, so one event is always one line; lines are split on ``\\n``
bytes only (U+2028 and ``\\r`` inside a text stay in it).

The writer only appends. Each line goes to the kernel in ``write`` calls of its own as soon as
it is made (no user-space buffer), so a killed process loses at most the line it was writing,
which then lies torn at the file's end; ``fsync=True`` also forces each line to the disk.
A directory that has been sealed (it holds ``manifest.json``) is never written again:
``TimelineSealed``. Reopening an unsealed timeline (after a crash) carries on from the last
``seq``; a torn last line is first ended with ``\\n`` (its bytes stay, as found) and a
``recorder_failure`` event saying so is appended.

``read_timeline`` returns every complete line and reports, instead of raising, a torn last
line (``torn``) and damaged lines anywhere else (``damaged``).
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from recordings.manifest import MANIFEST, TIMELINE, ManifestExists
from recordings.redact import mask_fields

__all__ = [
    "KINDS",
    "TimelineRead",
    "TimelineSealed",
    "TimelineWriter",
    "format_time",
    "mask_fields",
    "pauses_of",
    "read_timeline",
]

KINDS = frozenset(
    {
        "chat",
        "bot",
        "event",
        "routing",
        "pause",
        "resume",
        "media_open",
        "media_close",
        "recorder_failure",
    }
)
RESERVED = frozenset({"t", "seq", "kind"})
_KIND = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class TimelineSealed(ManifestExists):
    """The contact directory has been sealed: its timeline is never written again."""


def format_time(value: datetime) -> str:
    """``2026-12-02T10:00:00.123Z``: UTC, milliseconds (an aware datetime only)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: timeline times are UTC")
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _encode(event: dict[str, Any]) -> bytes:
    text = json.dumps(event, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.encode("utf-8") + b"\n"


@dataclass
class TimelineRead:
    """What ``read_timeline`` found: the events of complete lines, and what was wrong."""

    path: Path
    events: list[dict[str, Any]] = field(default_factory=list)
    torn: bytes | None = None  # an incomplete last line (no ``\n``): the writer was killed
    torn_offset: int | None = None  # where it starts in the file
    damaged: list[tuple[int, str]] = field(default_factory=list)  # (line number, why)

    @property
    def ok(self) -> bool:
        return self.torn is None and not self.damaged

    @property
    def last_seq(self) -> int:
        return max((e["seq"] for e in self.events if isinstance(e.get("seq"), int)), default=0)

    @property
    def problems(self) -> list[str]:
        found = [f"{self.path.name} line {line}: {why}" for line, why in self.damaged]
        if self.torn is not None:
            found.append(
                f"{self.path.name}: torn last line at byte {self.torn_offset}"
                f" ({len(self.torn)} bytes without an end of line)"
            )
        return found


def read_timeline(path: str | os.PathLike[str]) -> TimelineRead:
    """Every complete line of a timeline (a file, or a contact directory holding one).

    A last line without ``\\n`` is ``torn`` (not an event, whatever it holds); a complete line
    that is not a JSON object with an integer ``seq`` above the previous one and a ``kind``
    is listed in ``damaged`` with its line number, and the reading goes on.
    """
    target = Path(path)
    if target.is_dir():
        target = target / TIMELINE
    data = target.read_bytes()
    result = TimelineRead(path=target)
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a line break
    if tail:
        result.torn = tail
        result.torn_offset = len(data) - len(tail)
    previous = 0
    for number, line in enumerate(lines, start=1):
        try:
            event = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            result.damaged.append((number, f"not JSON ({error})"))
            continue
        if not isinstance(event, dict):
            result.damaged.append((number, "not a JSON object"))
            continue
        seq = event.get("seq")
        if (
            not isinstance(seq, int)
            or isinstance(seq, bool)
            or not isinstance(event.get("kind"), str)
        ):
            result.damaged.append((number, "no integer seq or no kind"))
            continue
        if seq <= previous:
            result.damaged.append((number, f"seq {seq} does not follow {previous}"))
        previous = max(previous, seq)
        result.events.append(event)
    return result


def pauses_of(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The spans media recording was paused, from a timeline's ``pause`` and ``resume`` lines.

    A ``pause`` line carries ``pause_id``, ``by`` and ``reason``; the ``resume`` line with the
    same ``pause_id`` ends it (its ``by`` and ``reason`` say who or what resumed: an advisor,
    the time limit, the end of the call). A pause never resumed (the process died) has
    ``"to": None``. Returned in timeline order: ``{"id", "by", "reason", "from", "to",
    "resumed_by", "resume_reason"}``.
    """
    spans: dict[str, dict[str, Any]] = {}
    for event in events:
        pause_id = event.get("pause_id")
        if not isinstance(pause_id, str):
            continue
        if event.get("kind") == "pause" and pause_id not in spans:
            spans[pause_id] = {
                "id": pause_id,
                "by": event.get("by"),
                "reason": event.get("reason"),
                "from": event.get("t"),
                "to": None,
                "resumed_by": None,
                "resume_reason": None,
            }
        elif event.get("kind") == "resume" and pause_id in spans and spans[pause_id]["to"] is None:
            spans[pause_id].update(
                to=event.get("t"), resumed_by=event.get("by"), resume_reason=event.get("reason")
            )
    return list(spans.values())


class TimelineWriter:
    """Appends events to ``<directory>/timeline.jsonl``; see the module's description.

    Thread-safe (one lock around numbering and writing). ``clock`` returns the aware time
    of each event (``datetime.now(UTC)`` by default).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        clock: Callable[[], datetime] | None = None,
        fsync: bool = False,
    ) -> None:
        self.directory = Path(directory)
        self.path = self.directory / TIMELINE
        self._clock = clock or (lambda: datetime.now(UTC))
        self._fsync = fsync
        self._lock = threading.Lock()
        self._check_unsealed()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(
            self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640
        )
        self._seq = 0
        try:
            self._check_unsealed()  # sealed between the first check and the open
            if os.fstat(self._fd).st_size:
                self._resume()
        except BaseException:
            self.close()
            raise

    @property
    def seq(self) -> int:
        """The ``seq`` of the last line written (0 before the first)."""
        return self._seq

    @property
    def closed(self) -> bool:
        return self._fd is None

    def _check_unsealed(self) -> None:
        if (self.directory / MANIFEST).exists():
            raise TimelineSealed(f"{self.directory} is sealed: its timeline is not written again")

    def _resume(self) -> None:
        found = read_timeline(self.path)
        self._seq = found.last_seq
        if found.torn is not None:
            self._write(b"\n")
            self.append(
                "recorder_failure",
                reason="timeline reopened after a torn last line",
                torn_offset=found.torn_offset,
                torn_bytes=len(found.torn),
            )

    def _write(self, data: bytes) -> None:
        assert self._fd is not None
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        if self._fsync:
            os.fsync(self._fd)

    def append(self, kind: str, /, *, at: datetime | None = None, **fields: Any) -> dict[str, Any]:
        """Write one event now; returns it as written (``t``, ``seq``, ``kind``, masked fields).

        ``at`` gives the event's time when it is not now. Raises ``ValueError`` for a bad kind,
        a reserved field name (``t``, ``seq``, ``kind``) or fields JSON cannot hold (nothing is
        written then), ``TimelineSealed`` once the directory has been sealed.
        """
        if not isinstance(kind, str) or not _KIND.match(kind):
            raise ValueError(f"bad timeline kind {kind!r}")
        clash = RESERVED & set(fields)
        if clash:
            raise ValueError(f"reserved timeline field(s): {', '.join(sorted(clash))}")
        masked = mask_fields(fields)
        with self._lock:
            if self._fd is None:
                raise ValueError(f"{self.path} is closed")
            self._check_unsealed()
            event = {"t": format_time(at or self._clock()), "seq": self._seq + 1, "kind": kind}
            event.update(masked)
            try:
                line = _encode(event)
            except (TypeError, ValueError) as error:  # not JSON, or NaN
                raise ValueError(f"timeline fields JSON cannot hold: {error}") from error
            self._write(line)
            self._seq += 1
        return event

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                fd, self._fd = self._fd, None
                os.close(fd)

    def __enter__(self) -> TimelineWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TimelineWriter({str(self.path)!r}, seq={self._seq})"
