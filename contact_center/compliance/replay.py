"""What a replay shows, built from a contact's recording: tracks on one clock, and its story.

Every media file is ``<party>-<kind>-<n>.webm|.mkv`` with a ``STARTED_AT`` tag, the wall clock
of its first frame; its time 0 is that moment. The replay's clock starts at the contact's
first moment (``t0``: its creation, its first timeline line or its first file, whichever is
earliest), and each track's ``offset_s`` is where its time 0 falls on that clock, so one seek
bar drives every file: at replay time T a track plays ``T - offset_s`` if that lies within it.

The story is the sealed ``timeline.jsonl`` when there is one (what was sealed is what is
shown); without it (a contact not yet sealed, or recorded before timelines) the database's chat
lines and events. Either way each entry has its ``offset_s`` on the same clock, and the spans
recording was paused (``pause``/``resume`` lines, or the manifest's ``pauses``) are ``pauses``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO, Any

import av
import av.error

MEDIA_NAME = re.compile(
    r"^(?P<party>[a-z][a-z0-9_]*)-(?P<kind>audio|video)-(?P<n>\d+)\.(?P<ext>webm|mkv)$"
)
CONTENT_TYPES = {("video", "webm"): "video/webm", ("audio", "webm"): "audio/webm"}
_WHO = ("sender", "sender_role", "role", "party", "actor", "by")
_TEXT = ("text", "reply", "note", "message", "reason")
_LABEL = ("event", "what", "type", "state", "to_state")


@dataclass(frozen=True, slots=True)
class MediaName:
    party: str
    kind: str  # "audio" or "video"
    index: int
    ext: str

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES.get((self.kind, self.ext), "video/x-matroska")


def media_name(name: str) -> MediaName | None:
    """The party, kind and number of a recording file name (None: not a media file)."""
    match = MEDIA_NAME.match(name)
    if match is None:
        return None
    return MediaName(match["party"], match["kind"], int(match["n"]), match["ext"])


def parse_time(value: Any) -> datetime | None:
    """An aware UTC datetime from ISO 8601 text (``Z`` or an offset) or a naive UTC datetime."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def probe(source: str | IO[bytes]) -> tuple[datetime | None, float | None]:
    """(STARTED_AT, duration in s) of a media file, from its header (no decoding)."""
    try:
        with av.open(source, "r") as container:
            tags = {key.upper(): value for key, value in container.metadata.items()}
            duration = container.duration / 1_000_000 if container.duration else None
    except (av.error.FFmpegError, OSError, ValueError):
        return None, None
    return parse_time(tags.get("STARTED_AT")), duration


def read_jsonl(data: bytes) -> list[dict[str, Any]]:
    """The events of a timeline's bytes: every complete line that is a JSON object."""
    events = []
    lines = data.split(b"\n")
    lines.pop()  # the part after the last line break: empty, or a torn last line
    for line in lines:
        try:
            event = json.loads(line)
        except (UnicodeDecodeError, ValueError):
            continue
        if isinstance(event, dict) and isinstance(event.get("kind"), str):
            events.append(event)
    return events


def _first(fields: dict[str, Any], names: Iterable[str]) -> Any:
    for name in names:
        value = fields.get(name)
        if value not in (None, ""):
            return value
    return None


def from_timeline(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entries from ``timeline.jsonl`` lines (``t``, ``seq``, ``kind`` and the kind's fields)."""
    entries = []
    for event in events:
        at = parse_time(event.get("t"))
        if at is None:
            continue
        fields = {k: v for k, v in event.items() if k not in ("t", "seq", "kind")}
        kind = str(event["kind"])
        entries.append(
            {
                "at": at,
                "kind": kind,
                "label": _first(fields, _LABEL) or kind,
                "who": _first(fields, _WHO),
                "text": _first(fields, _TEXT) if kind not in ("pause", "resume") else None,
                "data": fields,
            }
        )
    return entries


#: How the database's event kinds read in a replay.
EVENT_KINDS = {
    "created": "event",
    "handoff": "bot",
    "offered": "routing",
    "accepted": "offer",
    "rejected": "offer",
    "offer_expired": "offer",
    "offer_rejected": "offer",
    "upgraded": "upgrade",
    "transferred": "transfer",
}


def from_database(chat: Iterable[Any], events: Iterable[Any]) -> list[dict[str, Any]]:
    """Entries from the database: ``ChatMessage`` and ``ContactEvent`` rows."""
    entries = [
        {
            "at": parse_time(line.at),
            "kind": "bot" if line.sender_role == "bot" else "chat",
            "label": "chat",
            "who": line.sender_role,
            "text": line.text,
            "data": {"seq": line.seq},
        }
        for line in chat
    ]
    for event in events:
        kind = EVENT_KINDS.get(event.kind)
        if kind is None:
            if event.kind.startswith("peer_"):
                kind = "media"
            elif "pause" in event.kind:
                kind = "pause"
            elif "resume" in event.kind:
                kind = "resume"
            else:
                kind = "event"
        data = dict(event.data or {})
        data.pop("transcript", None)  # the chat lines are entries of their own
        if event.from_state or event.to_state:
            data.update({"from": event.from_state, "to": event.to_state})
        entries.append(
            {
                "at": parse_time(event.at),
                "kind": kind,
                "label": event.kind,
                "who": event.actor,
                "text": data.get("reason") if kind in ("pause", "resume") else None,
                "data": data,
            }
        )
    return sorted((e for e in entries if e["at"] is not None), key=lambda e: e["at"])


def _span(item: Any) -> tuple[datetime | None, datetime | None, dict[str, Any]]:
    if not isinstance(item, dict):
        return None, None, {}
    start = parse_time(_first(item, ("start", "from", "paused_at", "at", "t")))
    end = parse_time(_first(item, ("end", "to", "resumed_at", "until")))
    return start, end, item


def pauses(entries: list[dict[str, Any]], listed: list[Any], end: datetime) -> list[dict[str, Any]]:
    """The spans media recording was paused: the manifest's list, else pause/resume entries."""
    spans: list[tuple[datetime, datetime, dict[str, Any]]] = []
    for item in listed:
        start, stop, info = _span(item)
        if start is not None:
            spans.append((start, stop or end, info))
    if not spans:
        open_pause: dict[str, Any] | None = None
        for entry in entries:
            if entry["kind"] == "pause" and open_pause is None:
                open_pause = entry
            elif entry["kind"] == "resume" and open_pause is not None:
                spans.append((open_pause["at"], entry["at"], open_pause["data"]))
                open_pause = None
        if open_pause is not None:
            spans.append((open_pause["at"], end, open_pause["data"]))
    return [
        {
            "start": start,
            "end": stop,
            "by": _first(info, ("by", "actor", "who", "advisor")),
            "reason": _first(info, ("reason", "note")),
        }
        for start, stop, info in sorted(spans, key=lambda s: s[0])
    ]


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build(
    *,
    created_at: datetime,
    ended_at: datetime | None,
    tracks: list[dict[str, Any]],
    entries: list[dict[str, Any]],
    listed_pauses: list[Any],
    source: str,
) -> dict[str, Any]:
    """The replay: ``tracks`` (each with ``started_at`` and ``duration_s``) and ``entries``
    placed on one clock from ``t0``; ``duration_s`` is where the last thing ends."""
    created = parse_time(created_at) or datetime.now(UTC)
    starts = [t["started_at"] for t in tracks if t.get("started_at") is not None]
    t0 = min([created, *starts, *(e["at"] for e in entries)])
    ends = [parse_time(ended_at) or created, *(e["at"] for e in entries)]
    for track in tracks:
        start = track.get("started_at")
        if start is None:
            track["offset_s"] = None  # no STARTED_AT: listed, but it cannot be placed
            continue
        track["offset_s"] = round((start - t0).total_seconds(), 3)
        ends.append(start + timedelta(seconds=float(track.get("duration_s") or 0)))
        track["started_at"] = _iso(start)
    end = max(ends)
    spans = pauses(entries, listed_pauses, end)
    return {
        "t0": _iso(t0),
        "duration_s": round((end - t0).total_seconds(), 3),
        "source": source,
        "tracks": tracks,
        "entries": [
            {
                **{k: v for k, v in entry.items() if k != "at"},
                "t": _iso(entry["at"]),
                "offset_s": round((entry["at"] - t0).total_seconds(), 3),
            }
            for entry in entries
        ],
        "pauses": [
            {
                "start": _iso(span["start"]),
                "end": _iso(span["end"]),
                "start_s": round((span["start"] - t0).total_seconds(), 3),
                "end_s": round((span["end"] - t0).total_seconds(), 3),
                "by": span["by"],
                "reason": span["reason"],
            }
            for span in spans
        ],
    }
