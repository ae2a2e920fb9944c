"""Shared pieces of the recordings-core tests: a real database, real media, a sealed root."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import av
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from recordings.ledger import ChainHead, LedgerEntry
from recordings.mux import TrackWriter

ROOT = Path(__file__).resolve().parents[2]
TABLES = [LedgerEntry.__table__, ChainHead.__table__]  # type: ignore[attr-defined]


def database_urls(tmp: Path) -> list[str]:
    urls = [f"sqlite+aiosqlite:///{tmp / 'ledger.db'}"]
    if os.environ.get("CC_TEST_DATABASE_URL"):
        urls.append(os.environ["CC_TEST_DATABASE_URL"])
    return urls


async def make_tables(url: str) -> AsyncEngine:
    engine = create_async_engine(url, connect_args={"timeout": 30} if "sqlite" in url else {})
    async with engine.begin() as conn:
        await conn.run_sync(SQLModel.metadata.drop_all, tables=TABLES)
        await conn.run_sync(SQLModel.metadata.create_all, tables=TABLES)
    return engine


@pytest.fixture(params=["sqlite", "postgresql"])
async def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A sessionmaker on fresh ledger tables (SQLite file; PostgreSQL when configured)."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"
    else:
        url = os.environ.get("CC_TEST_DATABASE_URL", "")
        if not url:
            pytest.skip("CC_TEST_DATABASE_URL is not set")
    engine = await make_tables(url)
    try:
        yield async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
    finally:
        async with engine.begin() as conn:
            await conn.run_sync(SQLModel.metadata.drop_all, tables=TABLES)
        await engine.dispose()


_VIDEO: list[bytes] = []
_AUDIO: list[bytes] = []


def _payloads() -> tuple[list[bytes], list[bytes]]:
    if not _VIDEO:
        encoder = av.CodecContext.create("libvpx", "w")
        encoder.width, encoder.height, encoder.pix_fmt = 160, 120, "yuv420p"  # type: ignore[attr-defined]
        encoder.time_base = Fraction(1, 30)
        encoder.options = {"deadline": "realtime"}
        for index in range(15):
            frame = av.VideoFrame(160, 120, "yuv420p")
            frame.pts = index
            _VIDEO.extend(bytes(p) for p in encoder.encode(frame))  # type: ignore[attr-defined]
        _VIDEO.extend(bytes(p) for p in encoder.encode(None))  # type: ignore[attr-defined]
        audio = av.CodecContext.create("libopus", "w")
        audio.sample_rate, audio.layout, audio.format = 48000, "stereo", "s16"  # type: ignore[attr-defined]
        for index in range(25):
            frame = av.AudioFrame(format="s16", layout="stereo", samples=960)
            frame.sample_rate, frame.pts = 48000, index * 960
            for plane in frame.planes:
                plane.update(bytes(plane.buffer_size))
            _AUDIO.extend(bytes(p) for p in audio.encode(frame))  # type: ignore[attr-defined]
    return _VIDEO, _AUDIO


def record_contact(directory: Path, *, timeline: bool = True) -> Path:
    """A contact directory as the server writes it: one VP8 and one Opus WebM, a timeline."""
    video, audio = _payloads()
    directory.mkdir(parents=True, exist_ok=True)
    writer = TrackWriter(directory / "customer-video-0.webm", "video", "video/VP8", 90000)
    for index, payload in enumerate(video):
        writer.write(payload, 3000 * index, keyframe=not payload[0] & 1)
    writer.close()
    writer = TrackWriter(directory / "customer-audio-0.webm", "audio", "audio/opus", 48000)
    for index, payload in enumerate(audio):
        writer.write(payload, 960 * index, keyframe=True)
    writer.close()
    if timeline:
        lines = [
            {"at": "2026-12-02T10:00:00Z", "event": "start", "text": "客户: 你好"},
            {"at": "2026-12-02T10:00:01Z", "event": "chat", "text": "card **** 1111"},
        ]
        (directory / "timeline.jsonl").write_text(
            "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8"
        )
    return directory


def now() -> datetime:
    return datetime.now(UTC)
