"""Contacts as the server leaves them, for the compliance tests: rows, real media, sealed.

``make_contact`` writes a contact with its chat lines and events into the app's database;
``record`` writes its media as the server's recorder does (``recordings.mux.TrackWriter`` from
VP8/Opus frames encoded here, a ``STARTED_AT`` tag on each file), and a ``timeline.jsonl`` with
``TimelineWriter``; ``seal`` seals the directory into the ledger (``recordings.seal``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from contact_center.db.engine import transaction
from contact_center.db.models import ChatMessage, Contact, ContactEvent
from recordings.mux import TrackWriter
from recordings.seal import SealResult, seal_contact
from recordings.timeline import TimelineWriter

FPS = 10
_FRAMES: dict[tuple[str, int], list[bytes]] = {}


def vp8_frames(count: int, *, shade: int = 0) -> list[bytes]:
    """``count`` VP8 frames (160x120), a bar moving across a grey of ``shade``."""
    key = ("vp8", count * 1000 + shade)
    if key not in _FRAMES:
        encoder = av.CodecContext.create("libvpx", "w")
        encoder.width, encoder.height, encoder.pix_fmt = 160, 120, "yuv420p"  # type: ignore[attr-defined]
        encoder.time_base = Fraction(1, FPS)
        encoder.options = {"deadline": "realtime", "g": str(FPS)}
        out: list[bytes] = []
        for index in range(count):
            frame = av.VideoFrame(160, 120, "yuv420p")
            luma = bytearray([80 + shade] * (160 * 120))
            x = (index * 4) % 160
            for y in range(120):
                luma[y * 160 + x : y * 160 + min(160, x + 8)] = b"\xf0" * min(8, 160 - x)
            frame.planes[0].update(bytes(luma))
            frame.planes[1].update(bytes([128]) * (80 * 60))
            frame.planes[2].update(bytes([128]) * (80 * 60))
            frame.pts = index
            out.extend(bytes(p) for p in encoder.encode(frame))  # type: ignore[attr-defined]
        out.extend(bytes(p) for p in encoder.encode(None))  # type: ignore[attr-defined]
        _FRAMES[key] = out
    return _FRAMES[key]


def opus_frames(count: int) -> list[bytes]:
    """``count`` Opus packets of 20 ms of silence."""
    key = ("opus", count)
    if key not in _FRAMES:
        encoder = av.CodecContext.create("libopus", "w")
        encoder.sample_rate, encoder.layout, encoder.format = 48000, "stereo", "s16"  # type: ignore[attr-defined]
        out: list[bytes] = []
        for index in range(count):
            frame = av.AudioFrame(format="s16", layout="stereo", samples=960)
            frame.sample_rate, frame.pts = 48000, index * 960
            for plane in frame.planes:
                plane.update(bytes(plane.buffer_size))
            out.extend(bytes(p) for p in encoder.encode(frame))  # type: ignore[attr-defined]
        _FRAMES[key] = out
    return _FRAMES[key]


def write_track(
    directory: Path,
    party: str,
    kind: str,
    index: int,
    started_at: datetime,
    seconds: float,
    *,
    shade: int = 0,
) -> Path:
    """One track file as ``recordings.recorder`` names and tags it."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{party}-{kind}-{index}.webm"
    tags = {"PARTY": party, "STARTED_AT": started_at.isoformat(timespec="milliseconds")}
    if kind == "video":
        writer = TrackWriter(path, "video", "video/VP8", 90000, metadata=tags)
        for n, payload in enumerate(vp8_frames(int(seconds * FPS), shade=shade)):
            writer.write(payload, n * 90000 // FPS, keyframe=not payload[0] & 1)
    else:
        writer = TrackWriter(path, "audio", "audio/opus", 48000, metadata=tags)
        for n, payload in enumerate(opus_frames(int(seconds * 50))):
            writer.write(payload, n * 960, keyframe=True)
    writer.close()
    assert writer.error is None, writer.error
    return path


@dataclass
class Line:
    sender: str  # customer, advisor, bot, system
    text: str
    after_s: float  # seconds after the contact started


@dataclass
class Made:
    contact: Contact
    lines: list[ChatMessage] = field(default_factory=list)
    events: list[ContactEvent] = field(default_factory=list)


async def make_contact(
    db: async_sessionmaker[AsyncSession],
    *,
    customer_name: str,
    started: datetime | None = None,
    seconds: float = 120.0,
    language: str = "en",
    topic: str | None = "cards",
    channels: tuple[str, ...] = ("text",),
    vip: bool = False,
    state: str = "ended",
    advisor_id: int | None = None,
    intent: str | None = None,
    lines: tuple[Line, ...] = (),
) -> Made:
    """A contact with its chat lines and the events of its life, as the service writes them."""
    started = started or datetime.now(UTC) - timedelta(hours=1)
    contact = Contact(
        id=uuid.uuid4().hex,
        customer_ref=f"guest:{uuid.uuid4().hex}",
        customer_name=customer_name,
        channels=list(channels),
        language=language,
        topic=topic,
        vip=vip,
        state=state,
        advisor_id=advisor_id,
        created_at=started,
        ended_at=started + timedelta(seconds=seconds) if state in ("ended", "abandoned") else None,
    )
    made = Made(contact)
    async with transaction(db) as session:
        session.add(contact)
        await session.flush()
        events: list[tuple[float, str, str, dict[str, Any], str | None, str | None]] = [
            (0.0, contact.customer_ref, "created", {"channels": list(channels)}, None, "bot")
        ]
        if intent is not None or advisor_id is not None:
            events.append(
                (5.0, "bot", "handoff", {"intent": intent, "reason": "asked"}, "bot", "queued")
            )
        if advisor_id is not None:
            events.append(
                (
                    7.0,
                    "router",
                    "offered",
                    {"agent_id": f"a{advisor_id}", "explanation": {"why": "best"}},
                    None,
                    None,
                )
            )
            events.append((8.0, f"user:{advisor_id}", "accepted", {}, "offered", "connected"))
        for after, actor, kind, data, before, to in events:
            event = ContactEvent(
                contact_id=contact.id,
                at=started + timedelta(seconds=after),
                actor=actor,
                kind=kind,
                data=data,
                from_state=before,
                to_state=to,
            )
            session.add(event)
            made.events.append(event)
        for seq, line in enumerate(lines, start=1):
            message = ChatMessage(
                contact_id=contact.id,
                seq=seq,
                at=started + timedelta(seconds=line.after_s),
                sender_ref=line.sender,
                sender_role=line.sender,
                text=line.text,
            )
            session.add(message)
            made.lines.append(message)
    return made


def write_timeline(
    directory: Path, made: Made, extra: list[tuple[float, str, dict[str, Any]]]
) -> None:
    """A ``timeline.jsonl`` of the contact's chat and events, plus ``extra`` (after_s, kind, fields)."""
    started = made.contact.created_at
    items: list[tuple[datetime, str, dict[str, Any]]] = [
        (e.at, "event", {"event": e.kind, "actor": e.actor, "to_state": e.to_state})
        for e in made.events
    ]
    items += [
        (m.at, "chat", {"chat_seq": m.seq, "sender": m.sender_role, "text": m.text})
        for m in made.lines
    ]
    items += [(started + timedelta(seconds=after), kind, fields) for after, kind, fields in extra]
    with TimelineWriter(directory) as writer:
        for at, kind, fields in sorted(items, key=lambda item: item[0]):
            writer.append(kind, at=at, **fields)


async def record(
    root: Path,
    made: Made,
    *,
    customer_at_s: float = 10.0,
    advisor_at_s: float = 11.5,
    seconds: float = 3.0,
    audio: bool = True,
    timeline: list[tuple[float, str, dict[str, Any]]] | None = None,
) -> Path:
    """Media of both parties (starting at different moments) and, given, a timeline."""
    directory = root / made.contact.id
    started = made.contact.created_at
    for party, at, shade in (("customer", customer_at_s, 0), ("advisor", advisor_at_s, 60)):
        write_track(
            directory, party, "video", 1, started + timedelta(seconds=at), seconds, shade=shade
        )
        if audio:
            write_track(directory, party, "audio", 1, started + timedelta(seconds=at), seconds)
    if timeline is not None:
        write_timeline(directory, made, timeline)
    return directory


async def seal(db: async_sessionmaker[AsyncSession], directory: Path, **options: Any) -> SealResult:
    return await seal_contact(directory, db, metadata={"contact": directory.name}, **options)
