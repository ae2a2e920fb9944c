"""Every contact recorded through the real server: timeline, media, masking, seal, ledger.

Real parts throughout: the app on a real port, Redis, the database, aiortc peers over
loopback, PyAV to open what was written, the ledger's own verify. Where a test makes a part
fail on purpose, it says how and why that cannot be done for real here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import av
import pytest
from aiohttp.test_utils import TestServer
from prometheus_client import REGISTRY
from sqlmodel import select

from contact_center import appkeys, redis_keys
from contact_center.config import Settings
from contact_center.contacts.alarms import read_alarms
from contact_center.contacts.recording import Recordings
from contact_center.db.engine import create_engine, session_factory, transaction
from contact_center.db.models import ChatMessage as ChatRow
from contact_center.db.models import Contact, ContactEvent
from contact_center.media.call import MediaHub
from contact_center.media.ice import IceSettings
from contact_center.server.app import create_app
from contact_center.tools.synthetic import SyntheticPeer
from contact_center.tools.wsclient import RequestFailed, SignallingClient
from recordings import ledger
from recordings.ledger import LedgerEntry
from recordings.manifest import (
    MANIFEST,
    TIMELINE,
    build_manifest,
    hash_file,
    manifest_hash,
    read_manifest,
    write_manifest,
)
from recordings.storage import LocalStorage
from recordings.timeline import TimelineWriter, read_timeline
from recordings.verify import verify
from tests.helpers import PASSWORD, ROOT, cli_env, free_port, make_user, run_cli, wait_ready
from tests.recordings.sealing import record_contact
from tests.redis_servers import ON_CLUSTER_TOO

ICE = IceSettings.loopback()
CARD = "4111 1111 1111 1111"  # a test PAN that passes the Luhn check
CARD_DIGITS = ("4111 1111 1111 1111", "4111111111111111", "4111 1111 1111")
MASKED = "**** **** **** 1111"
PAUSE_LIMIT_S = 2.0


@pytest.fixture
def fast_settings(fast_settings: Settings) -> Settings:
    """The shared fast settings, with a pause limit short enough to reach within a test."""
    return fast_settings.model_copy(update={"recording_pause_limit_s": PAUSE_LIMIT_S})


def failures(stage: str) -> float:
    return REGISTRY.get_sample_value("cc_recorder_failures_total", {"stage": stage}) or 0.0


async def sealed(app: Any, contact_id: str, seconds: float = 40) -> LedgerEntry:
    """The contact's seal entry, once its instance has sealed it."""
    db = app[appkeys.DB]
    async with asyncio.timeout(seconds):
        while True:
            found = [e for e in await ledger.entries(db, contact_id=contact_id) if e.kind == "seal"]
            if found:
                return found[-1]
            await asyncio.sleep(0.1)


def timeline(directory: Path) -> list[dict[str, Any]]:
    found = read_timeline(directory)
    assert found.ok, found.problems
    events = found.events
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    sids = [tuple(e["sid"]) for e in events if "sid" in e]
    assert sids == sorted(sids) and len(set(sids)) == len(sids), "file order is the stream's"
    return events


def state_changes(events: list[dict[str, Any]]) -> list[str]:
    return [e["to"] for e in events if e["kind"] == "event" and e.get("to")]


def manifest_of(directory: Path) -> dict[str, Any]:
    return read_manifest((directory / MANIFEST).read_bytes())


async def connect(clients, advisor_factory, channels=("text",), **advisor):  # type: ignore[no-untyped-def]
    user = await advisor_factory(**advisor)
    agent = await clients(username=user.username)
    await agent.request("agent.status", status="available")
    customer = await clients(guest=True)
    started = await customer.request(
        "session.start", channels=list(channels), language="en", topic="cards", skip_bot=True
    )
    contact_id = started["contact_id"]
    await agent.wait_for("offer", contact_id=contact_id)
    await agent.request("offer.accept", contact_id=contact_id)
    await customer.wait_for("session.state", contact_id=contact_id, state="connected")
    return customer, agent, contact_id, user


async def negotiate(client: SignallingClient, contact_id: str, peer: SyntheticPeer) -> None:
    await client.request("rtc.offer", contact_id=contact_id, sdp=await peer.offer())
    answer = await client.wait_for("rtc.answer", contact_id=contact_id)
    await peer.accept_answer(answer["sdp"])


async def until(predicate, seconds: float = 20) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(seconds):
        while not predicate():
            await asyncio.sleep(0.05)


def packets(path: Path) -> list[float]:
    """Presentation times (s) of every packet of a file's first stream, demuxed."""
    with av.open(str(path)) as container:
        stream = container.streams[0]
        return [
            float(p.pts * p.time_base)
            for p in container.demux(stream)
            if p.size and p.pts is not None and p.time_base is not None
        ]


def tags(path: Path) -> dict[str, str]:
    """A file's container tags, names upper-cased (Matroska keeps some as written, some not)."""
    with av.open(str(path)) as container:
        return {key.upper(): value for key, value in container.metadata.items()}


def duration(path: Path) -> float:
    with av.open(str(path)) as container:
        assert container.duration, path.name
        return container.duration / 1_000_000


def assert_no_card(text: str, where: str) -> None:
    for digits in CARD_DIGITS:
        assert digits not in text, f"{where} holds the card number"


# ---------------------------------------------------------------- text only, masking


async def test_text_contact_is_recorded_sealed_and_card_numbers_are_masked_everywhere(
    server: TestServer, clients, advisor_factory, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    before = len(await ledger.entries(server.app[appkeys.DB]))
    customer, agent, contact_id, user = await connect(clients, advisor_factory)
    await customer.request("chat.send", contact_id=contact_id, text=f"my card is {CARD}, exp 12/27")
    shown = await agent.wait_for("chat.message", contact_id=contact_id)
    assert shown["text"] == f"my card is {MASKED}, exp 12/27"  # delivered as stored
    await agent.request("chat.send", contact_id=contact_id, text="thank you, checking")
    await customer.request("session.end", contact_id=contact_id)
    await agent.wait_for("session.state", contact_id=contact_id, state="wrap_up")
    await agent.request("wrapup.done", contact_id=contact_id, notes=f"card {CARD} blocked")
    entry = await sealed(server.app, contact_id)
    directory = server.app[appkeys.SETTINGS].recordings_dir / contact_id

    # the ledger grew by one entry, this contact's, sealed complete
    entries = await ledger.entries(server.app[appkeys.DB])
    assert len(entries) == before + 1 and entries[-1].seq == entry.seq
    assert entry.status == "complete" and entry.retain_until is not None

    # the database: the chat line and every event's data are masked
    async with transaction(server.app[appkeys.DB]) as session:
        rows = (await session.exec(select(ChatRow).where(ChatRow.contact_id == contact_id))).all()
        events = (
            await session.exec(select(ContactEvent).where(ContactEvent.contact_id == contact_id))
        ).all()
        contact = await session.get(Contact, contact_id)
    assert [r.text for r in rows if r.sender_role == "customer"] == [f"my card is {MASKED}, exp 12/27"]
    assert_no_card(json.dumps([e.data for e in events]), "the event rows")
    assert any(e.data.get("notes") == f"card {MASKED} blocked" for e in events)
    assert contact is not None and contact.recording_status == "complete"
    assert not contact.recording_failed

    # the timeline: every state change with its actor, the chat as stored, routing decisions
    lines = timeline(directory)
    raw = (directory / TIMELINE).read_text(encoding="utf-8")
    assert_no_card(raw, "the timeline")
    assert state_changes(lines) == ["queued", "offered", "connected", "wrap_up", "ended"]
    assert all(e["actor"] for e in lines if e["kind"] == "event")
    chat = [e for e in lines if e["kind"] == "chat"]
    assert [(c["sender"], c["chat_seq"]) for c in chat] == [("customer", 1), ("advisor", 2)]
    assert chat[0]["text"] == f"my card is {MASKED}, exp 12/27"
    routing = [e for e in lines if e["kind"] == "routing"]
    assert [r["decision"] for r in routing] == ["offer_created", "accepted"]
    assert routing[0]["explanation"]["winner"]["agent_id"] == str(user.id)
    kinds = [e.get("decision") or e.get("event") or e["kind"] for e in lines]
    assert kinds.index("offer_created") < kinds.index("accepted") < kinds.index("chat")
    assert all(e["instance"] == server.app[appkeys.INSTANCE_ID] for e in lines)

    # the manifest: the files, the timeline's hash, the metadata, masked too
    manifest = manifest_of(directory)
    raw_manifest = (directory / MANIFEST).read_text(encoding="utf-8")
    assert_no_card(raw_manifest, "the manifest")
    assert manifest_hash(manifest) == entry.manifest_hash
    assert [f["name"] for f in manifest["files"]] == [TIMELINE]
    assert manifest["timeline"]["sha256"] == hash_file(directory / TIMELINE)[0]
    meta = manifest["metadata"]
    assert meta["customer"]["ref"] == customer.welcome["user"]  # type: ignore[index]
    assert [a["username"] for a in meta["advisors"]] == [user.username]
    assert meta["channels"] == ["text"] and meta["language"] == "en" and meta["topic"] == "cards"
    assert meta["outcome"] == {"state": "ended", "reason": "wrapup_done", "actor": agent.welcome["user"]}  # type: ignore[index]
    assert meta["created_at"] and meta["connected_at"] and meta["ended_at"]

    # the logs of the whole contact (every level) never held it either
    assert any("sealed" in r.getMessage() for r in caplog.records)
    assert_no_card(caplog.text, "the logs")

    report = await verify(
        server.app[appkeys.DB],
        LocalStorage(server.app[appkeys.SETTINGS].recordings_dir),
        contact_id=contact_id,
    )
    assert report.ok, report.problems


async def test_an_abandoned_contact_is_sealed_too(server: TestServer, clients) -> None:
    customer = await clients(guest=True)
    started = await customer.request("session.start", channels=["text"], language="yue", skip_bot=True)
    contact_id = started["contact_id"]
    await customer.request("chat.send", contact_id=contact_id, text="有人嗎?")
    await customer.request("session.end", contact_id=contact_id)
    entry = await sealed(server.app, contact_id)
    directory = server.app[appkeys.SETTINGS].recordings_dir / contact_id
    lines = timeline(directory)
    assert state_changes(lines) == ["queued", "abandoned"]
    assert [e["text"] for e in lines if e["kind"] == "chat"] == ["有人嗎?"]
    manifest = manifest_of(directory)
    assert entry.status == "complete" and manifest["metadata"]["outcome"]["state"] == "abandoned"
    assert manifest["metadata"]["advisors"] == []


# ---------------------------------------------------------------- a real call


async def test_chat_upgraded_to_video_is_recorded_timelined_sealed_and_chained(
    server: TestServer, clients, advisor_factory
) -> None:
    app = server.app
    before = len(await ledger.entries(app[appkeys.DB]))
    customer, agent, contact_id, _ = await connect(clients, advisor_factory)
    await customer.request("chat.send", contact_id=contact_id, text="can we talk face to face?")
    assert not (await customer.request("session.upgrade", contact_id=contact_id, channel="video"))["agreed"]
    assert (await agent.request("session.upgrade", contact_id=contact_id, channel="video"))["agreed"]
    await customer.wait_for("session.state", contact_id=contact_id, reason="upgraded")
    customer_peer, agent_peer = SyntheticPeer(ICE, name="customer"), SyntheticPeer(ICE, name="advisor")
    try:
        await asyncio.gather(
            negotiate(customer, contact_id, customer_peer), negotiate(agent, contact_id, agent_peer)
        )
        await until(lambda: customer_peer.stats.stamped >= 10 and agent_peer.stats.stamped >= 10)
        await agent.request("chat.send", contact_id=contact_id, text="I can see you now")
        await asyncio.sleep(5)
        await customer.request("session.end", contact_id=contact_id)
    finally:
        await customer_peer.close()
        await agent_peer.close()
    await agent.wait_for("session.state", contact_id=contact_id, state="wrap_up")
    await agent.request("wrapup.done", contact_id=contact_id)
    entry = await sealed(app, contact_id)
    directory = app[appkeys.SETTINGS].recordings_dir / contact_id

    # four track files, each opening with PyAV, of durations within 1 s of each other
    tracks = sorted(p for p in directory.iterdir() if p.suffix == ".webm")
    assert [p.name for p in tracks] == [
        "advisor-audio-1.webm", "advisor-video-1.webm", "customer-audio-1.webm", "customer-video-1.webm"
    ]
    lengths = {p.name: duration(p) for p in tracks}
    assert max(lengths.values()) - min(lengths.values()) < 1.0, lengths
    assert min(lengths.values()) > 4.0, lengths
    for path in tracks:
        assert len(packets(path)) > 50, path.name

    # the timeline: chat, upgrade, media and state events in the order they happened
    lines = timeline(directory)
    assert state_changes(lines) == ["queued", "offered", "connected", "wrap_up", "ended"]
    order = [e.get("event") or e["kind"] for e in lines]
    chats = [i for i, k in enumerate(order) if k == "chat"]
    opened = [i for i, k in enumerate(order) if k == "media_open"]
    closed = [i for i, k in enumerate(order) if k == "media_close"]
    assert len(chats) == 2 and len(opened) == 4 and len(closed) == 4
    upgraded = order.index("upgraded")
    assert order.index("accepted") < chats[0] < upgraded < min(opened) < chats[1] < order.index("ended")
    assert max(opened) < min(closed) < order.index("wrapup_done")
    assert {e["file"] for e in lines if e["kind"] == "media_close"} == {p.name for p in tracks}
    assert all(e["frames"] > 0 and e["error"] is None for e in lines if e["kind"] == "media_close")
    upgrades = [e for e in lines if e["kind"] == "upgrade"]
    assert [(u["by"], u["agreed"]) for u in upgrades] == [("customer", False), ("advisor", True)]
    peer_events = {(e["data"]["party"], e["event"]) for e in lines if e.get("event", "").startswith("peer_")}
    assert {("customer", "peer_connected"), ("advisor", "peer_connected")} <= peer_events

    # the manifest's hashes are those of the files; the ledger grew by this one entry
    manifest = manifest_of(directory)
    for item in manifest["files"]:
        assert hash_file(directory / item["name"]) == (item["sha256"], item["size"]), item["name"]
    assert sorted(f["name"] for f in manifest["files"]) == sorted([*lengths, TIMELINE])
    assert manifest_hash(manifest) == entry.manifest_hash and manifest["status"] == "complete"
    assert manifest["metadata"]["channels"] == ["text", "video"]
    entries = await ledger.entries(app[appkeys.DB])
    assert len(entries) == before + 1 and entries[-1].contact_id == contact_id
    report = await verify(app[appkeys.DB], LocalStorage(directory.parent), contact_id=contact_id)
    assert report.ok, report.problems


async def test_a_transfer_keeps_both_advisors_legs(server: TestServer, clients, advisor_factory) -> None:
    app = server.app
    customer, first, contact_id, first_user = await connect(
        clients, advisor_factory, channels=("video",), skills={"cards": 4}
    )
    second_user = await advisor_factory(skills={"loans": 4})
    peers: list[SyntheticPeer] = []
    try:
        leg1 = SyntheticPeer(ICE, name="customer-1"), SyntheticPeer(ICE, name="advisor-1")
        peers += leg1
        await asyncio.gather(negotiate(customer, contact_id, leg1[0]), negotiate(first, contact_id, leg1[1]))
        await until(lambda: leg1[0].stats.stamped >= 40 and leg1[1].stats.stamped >= 40)
        first_leg_frames = leg1[1].stats.stamped  # what the customer sent, as the advisor saw it
        await first.request(
            "session.transfer", contact_id=contact_id, skills={"loans": 3}, queue_anyway=True
        )
        await customer.wait_for("session.state", contact_id=contact_id, reason="transferred")
        second = await clients(username=second_user.username)
        await second.request("agent.status", status="available")
        await second.wait_for("offer", contact_id=contact_id, timeout=15)
        await second.request("offer.accept", contact_id=contact_id)
        await customer.wait_for("session.state", contact_id=contact_id, state="connected")
        leg2 = SyntheticPeer(ICE, name="customer-2"), SyntheticPeer(ICE, name="advisor-2")
        peers += leg2
        await asyncio.gather(negotiate(customer, contact_id, leg2[0]), negotiate(second, contact_id, leg2[1]))
        await until(lambda: leg2[0].stats.stamped >= 40 and leg2[1].stats.stamped >= 40)
        await second.request("session.end", contact_id=contact_id)
        await second.request("wrapup.done", contact_id=contact_id)
    finally:
        for peer in peers:
            await peer.close()
    entry = await sealed(app, contact_id)
    directory = app[appkeys.SETTINGS].recordings_dir / contact_id
    names = sorted(p.name for p in directory.iterdir() if p.suffix == ".webm")
    assert names == sorted(
        f"{party}-{kind}-{leg}.webm" for party in ("advisor", "customer") for kind in ("audio", "video") for leg in (1, 2)
    )
    # every leg's frames are in its own file: nothing was opened over an earlier one
    for name in names:
        assert len(packets(directory / name)) >= 20, name
    one, two = (tags(directory / f"advisor-video-{leg}.webm") for leg in (1, 2))
    assert one["TRACK"] != two["TRACK"] and one["STARTED_AT"] < two["STARTED_AT"]
    # the customer's first leg holds at least what the first advisor received of it
    assert len(packets(directory / "customer-video-1.webm")) >= first_leg_frames * 0.9
    lines = timeline(directory)
    assert state_changes(lines) == ["queued", "offered", "connected", "queued", "offered", "connected", "wrap_up", "ended"]
    transfer = next(e for e in lines if e.get("event") == "transferred")
    assert transfer["actor"] == f"user:{first_user.id}" and transfer["data"]["skills"] == {"loans": 3}
    closes = [e["file"] for e in lines if e["kind"] == "media_close"]
    assert sorted(closes) == names
    assert lines.index(transfer) < min(i for i, e in enumerate(lines) if e["kind"] == "media_open" and e["file"].endswith("-2.webm"))
    manifest = manifest_of(directory)
    assert [a["username"] for a in manifest["metadata"]["advisors"]] == [first_user.username, second_user.username]
    assert manifest["metadata"]["transfers"] == 1 and entry.status == "complete"


# ---------------------------------------------------------------- secure pause


async def test_secure_pause_stops_media_recording_with_who_and_why_and_resumes_by_itself(
    server: TestServer, clients, advisor_factory
) -> None:
    app = server.app
    customer, agent, contact_id, user = await connect(clients, advisor_factory, channels=("video",))
    customer_peer, agent_peer = SyntheticPeer(ICE, name="customer"), SyntheticPeer(ICE, name="advisor")
    try:
        await asyncio.gather(
            negotiate(customer, contact_id, customer_peer), negotiate(agent, contact_id, agent_peer)
        )
        await until(lambda: agent_peer.stats.stamped >= 30)
        # only the contact's advisor may pause, and only with a reason
        for who, fields, code in (
            (customer, {"reason": "card number"}, "forbidden"),
            (agent, {}, "bad_field"),
            (agent, {"reason": ""}, "bad_field"),
        ):
            try:
                await who.request("recording.pause", contact_id=contact_id, **fields)
            except RequestFailed as exc:
                assert exc.code == code, exc
            else:
                raise AssertionError(f"pause {fields} was accepted")
        paused = await agent.request(
            "recording.pause", contact_id=contact_id, reason="customer reads out a card number"
        )
        assert paused["paused"] and paused["resume_at"]
        told = await customer.wait_for("recording.state", contact_id=contact_id, paused=True)
        assert told["by"] == f"user:{user.id}" and told["reason"] == "customer reads out a card number"
        try:
            await agent.request("recording.pause", contact_id=contact_id, reason="twice")
        except RequestFailed as exc:
            assert exc.code == "already_paused"
        else:
            raise AssertionError("a second pause was accepted")
        # the limit resumes it by itself, and both parties hear of it
        resumed = await agent.wait_for("recording.state", contact_id=contact_id, paused=False, timeout=PAUSE_LIMIT_S + 5)
        assert resumed["by"] == "system" and "limit" in resumed["reason"]
        try:
            await agent.request("recording.resume", contact_id=contact_id)
        except RequestFailed as exc:
            assert exc.code == "not_paused"
        else:
            raise AssertionError("resuming a running recording was accepted")
        await asyncio.sleep(1.5)
        second = await agent.request("recording.pause", contact_id=contact_id, reason="security answer")
        await asyncio.sleep(1.2)
        assert not (await agent.request("recording.resume", contact_id=contact_id))["paused"]
        await asyncio.sleep(1.5)
        await agent.request("session.end", contact_id=contact_id)
    finally:
        await customer_peer.close()
        await agent_peer.close()
    await agent.request("wrapup.done", contact_id=contact_id)
    await sealed(app, contact_id)
    directory = app[appkeys.SETTINGS].recordings_dir / contact_id

    lines = timeline(directory)
    pauses = [e for e in lines if e["kind"] in ("pause", "resume")]
    assert [(e["kind"], e["by"]) for e in pauses] == [
        ("pause", f"user:{user.id}"), ("resume", "system"), ("pause", f"user:{user.id}"), ("resume", f"user:{user.id}")
    ]
    assert pauses[0]["reason"] == "customer reads out a card number" and pauses[2]["pause_id"] == second["pause_id"]
    manifest = manifest_of(directory)
    spans = manifest["pauses"]
    assert [(p["by"], p["reason"], p["resumed_by"]) for p in spans] == [
        (f"user:{user.id}", "customer reads out a card number", "system"),
        (f"user:{user.id}", "security answer", f"user:{user.id}"),
    ]
    assert all(p["from"] < p["to"] for p in spans)
    # no media frame was written while paused: each pause is a hole in every file
    for name in ("customer-video-1.webm", "advisor-video-1.webm", "customer-audio-1.webm", "advisor-audio-1.webm"):
        times = packets(directory / name)
        holes = sorted((b - a for a, b in zip(times, times[1:], strict=False)), reverse=True)
        assert holes[0] > PAUSE_LIMIT_S - 0.5 and holes[1] > 0.8, (name, holes[:3])


# ---------------------------------------------------------------- failures are never silent


async def test_a_recorder_that_cannot_write_flags_the_contact_counts_alarms_and_tells_the_timeline(
    server: TestServer, clients, advisor_factory, redis_client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As root (the tests' user) a read-only directory stops nothing, and a full disk cannot be
    # made without privileges: the writer's open fails with the OSError a full disk gives.
    from recordings import mux

    real_open = mux.TrackWriter._open

    def full_disk(self: mux.TrackWriter) -> Any:
        if self.path.name.startswith("customer-video"):
            raise OSError(28, "No space left on device", str(self.path))
        return real_open(self)

    monkeypatch.setattr(mux.TrackWriter, "_open", full_disk)
    counted = failures("write")
    app = server.app
    customer, agent, contact_id, _ = await connect(clients, advisor_factory, channels=("video",))
    customer_peer, agent_peer = SyntheticPeer(ICE, name="customer"), SyntheticPeer(ICE, name="advisor")
    try:
        await asyncio.gather(
            negotiate(customer, contact_id, customer_peer), negotiate(agent, contact_id, agent_peer)
        )
        await until(lambda: agent_peer.stats.stamped >= 30)
        alarms = []
        async with asyncio.timeout(10):
            while not alarms:
                alarms = [a for a in await read_alarms(redis_client) if a.contact_id == contact_id]
                await asyncio.sleep(0.1)
        await customer.request("session.end", contact_id=contact_id)
    finally:
        await customer_peer.close()
        await agent_peer.close()
    await agent.request("wrapup.done", contact_id=contact_id)
    entry = await sealed(app, contact_id)

    # the supervisor's alarm, the metric, the database flag, the timeline, the seal
    assert alarms[0].kind == "recorder_failure" and "No space left" in alarms[0].message
    assert alarms[0].detail["file"] == "customer-video-1.webm" and alarms[0].instance == app[appkeys.INSTANCE_ID]
    assert failures("write") == counted + 1
    async with transaction(app[appkeys.DB]) as session:
        contact = await session.get(Contact, contact_id)
    assert contact is not None and contact.recording_failed and contact.recording_status == "incomplete"
    directory = app[appkeys.SETTINGS].recordings_dir / contact_id
    lines = timeline(directory)
    failure = [e for e in lines if e["kind"] == "recorder_failure"]
    assert [(f["stage"], f["party"], f["media"]) for f in failure] == [("write", "customer", "video")]
    assert entry.status == "incomplete" and manifest_of(directory)["metadata"]["recording_failed"]
    assert len(packets(directory / "advisor-video-1.webm")) > 20  # the other tracks were kept


async def test_a_timeline_that_cannot_be_written_goes_to_the_database_and_the_log(
    server: TestServer, clients, advisor_factory, redis_client, caplog, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The timeline's own write fails as on a full disk (os.write raising ENOSPC), once the
    # contact is under way; as root, no permission would stop it, hence the stand-in.
    from recordings.timeline import TimelineWriter

    counted = failures("timeline")
    app = server.app
    customer, agent, contact_id, _ = await connect(clients, advisor_factory)

    def full_disk(self: TimelineWriter, data: bytes) -> None:
        raise OSError(28, "No space left on device", str(self.path))

    monkeypatch.setattr(TimelineWriter, "_write", full_disk)
    caplog.set_level(logging.ERROR, logger="contact_center.contacts.recording")
    await customer.request("chat.send", contact_id=contact_id, text="hello?")
    async with asyncio.timeout(10):
        while not [a for a in await read_alarms(redis_client) if a.contact_id == contact_id]:
            await asyncio.sleep(0.1)
    await customer.request("session.end", contact_id=contact_id)
    await agent.request("wrapup.done", contact_id=contact_id)
    entry = await sealed(app, contact_id)

    async with transaction(app[appkeys.DB]) as session:
        contact = await session.get(Contact, contact_id)
        rows = (
            await session.exec(
                select(ContactEvent).where(
                    ContactEvent.contact_id == contact_id, ContactEvent.kind == "recorder_failure"
                )
            )
        ).all()
    assert contact is not None and contact.recording_failed
    assert [r.data["stage"] for r in rows] == ["timeline"] and "No space left" in rows[0].data["error"]
    assert any(
        r.levelno == logging.ERROR and contact_id in r.getMessage() and "timeline" in r.getMessage()
        for r in caplog.records
    )
    assert failures("timeline") == counted + 1
    assert entry.status == "incomplete"
    lines = read_timeline(app[appkeys.SETTINGS].recordings_dir / contact_id).events
    assert [e.get("event") or e["kind"] for e in lines][-1] != "wrapup_done"  # written up to the failure


# ---------------------------------------------------------------- several instances


@ON_CLUSTER_TOO
async def test_two_writers_make_one_timeline_in_the_streams_order(
    tmp_path: Path, redis_client, database_url: str
) -> None:
    """The owner writes the file; another instance's events reach it through the stream."""
    engine = create_engine(database_url)
    db = session_factory(engine)
    owner = Recordings(db=db, redis=redis_client, media=MediaHub(ICE), instance_id="A", root=tmp_path / "a")
    other = Recordings(db=db, redis=redis_client, media=MediaHub(ICE), instance_id="B", root=tmp_path / "b")
    contact_id = "c2writers"
    await owner.open(contact_id)
    await owner.open("c-idle")  # the loop's one XREAD names both streams (one slot on a cluster)
    loop = asyncio.create_task(owner.run())

    async def write(recordings: Recordings, name: str) -> None:
        for index in range(100):
            await recordings.add(contact_id, "note", writer=name, index=index)
            if index % 7 == 0:
                await asyncio.sleep(0)

    try:
        await asyncio.gather(write(owner, "A"), write(other, "B"))
        # the last word is the other's: only the owner's XREAD loop can bring it in
        await other.add(contact_id, "note", writer="B", index=100)
        directory = tmp_path / "a" / contact_id
        await until(lambda: len(read_timeline(directory).events) == 201, 10)
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        stream = await redis_client.xrange(redis_keys.timeline(contact_id))
        await owner.close()
        await engine.dispose()
    lines = timeline(directory)  # seq 1..201, stream ids increasing
    assert [line["sid"] for line in lines] == [[int(x) for x in sid.split("-")] for sid, _ in stream]
    for name, count in (("A", 100), ("B", 101)):
        mine = [line for line in lines if line["writer"] == name]
        assert [line["index"] for line in mine] == list(range(count))  # each writer's own order
        assert {line["instance"] for line in mine} == {name}
    switches = sum(1 for a, b in zip(lines, lines[1:], strict=False) if a["writer"] != b["writer"])
    assert switches > 2, "the writers did interleave"
    assert not (tmp_path / "b").exists(), "only the owner writes files"


async def _instance(settings: Settings) -> TestServer:
    port = free_port()
    app = create_app(settings.model_copy(update={"port": port, "public_base_url": f"http://127.0.0.1:{port}"}))
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    return server


async def test_a_contact_handled_by_two_instances_has_one_timeline_where_its_media_is(
    fast_settings: Settings, redis_client
) -> None:
    first, second = await _instance(fast_settings), await _instance(fast_settings)
    user = await make_user(fast_settings, "advisor", languages=["en"], skills={"general": 3})
    customer = SignallingClient(str(first.make_url("")))
    agent = SignallingClient(str(second.make_url("")))
    agent_media = SignallingClient(str(first.make_url("")), session=agent.http)
    peers = [SyntheticPeer(ICE, video=False, name="customer"), SyntheticPeer(ICE, video=False, name="advisor")]
    try:
        await agent.login(user.username, PASSWORD)
        await agent.connect()
        await agent.request("agent.status", status="available")
        await customer.as_guest()
        await customer.connect()
        contact_id = (await customer.request("session.start", channels=["voice"], language="en", skip_bot=True))["contact_id"]
        offer = await agent.wait_for("offer", contact_id=contact_id)
        await agent.request("offer.accept", contact_id=contact_id)  # on the second instance
        await customer.wait_for("session.state", contact_id=contact_id, state="connected")
        await negotiate(customer, contact_id, peers[0])
        await agent_media.connect(offer["media_url"], media_only=True)
        await negotiate(agent_media, contact_id, peers[1])
        for index in range(6):
            await customer.request("chat.send", contact_id=contact_id, text=f"customer {index}")
            await agent.request("chat.send", contact_id=contact_id, text=f"advisor {index}")
        await until(lambda: peers[0].stats.frames["audio"] > 50 and peers[1].stats.frames["audio"] > 50)
        # the advisor ends it on the second instance: the media, on the first, ends there too
        await agent.request("session.end", contact_id=contact_id)
        await until(lambda: first.app[appkeys.MEDIA].get(contact_id) is None, 10)
        await agent.request("wrapup.done", contact_id=contact_id, notes="done on instance two")
        entry = await sealed(first.app, contact_id)
    finally:
        for peer in peers:
            await peer.close()
        for client in (customer, agent_media, agent):
            await client.close()
        await first.close()
        await second.close()
    directory = fast_settings.recordings_dir / contact_id  # type: ignore[operator]
    lines = timeline(directory)
    instances = {line["instance"] for line in lines}
    assert instances == {first.app[appkeys.INSTANCE_ID], second.app[appkeys.INSTANCE_ID]}
    chat = [line for line in lines if line["kind"] == "chat"]
    assert [c["chat_seq"] for c in chat] == list(range(1, 13))  # the chat's own order, kept
    assert [c["text"] for c in chat][:2] == ["customer 0", "advisor 0"]
    order = [line.get("event") or line["kind"] for line in lines]
    assert order.index("accepted") < order.index("media_open") < order.index("ended")
    assert max(i for i, k in enumerate(order) if k == "media_close") < order.index("wrapup_done")
    assert entry.status == "complete" and {p.name for p in directory.glob("*.webm")} == {
        "customer-audio-1.webm", "advisor-audio-1.webm"
    }


# ---------------------------------------------------------------- after a crash


async def test_at_start_what_a_dead_instance_left_unsealed_or_unchained_is_sealed(
    fast_settings: Settings, redis_client
) -> None:
    root = fast_settings.recordings_dir
    assert root is not None
    engine = create_engine(fast_settings.database_url)
    contact = Contact(
        customer_ref="guest:crashed", customer_name="Guest", channels=["video"], language="en",
        # ended by another instance while the one recording it was dead (a live one is adopted:
        # tests/contacts/test_media_after_restart.py)
        state="ended", instance="dead:1:instance", recording_status="recording",
    )
    try:
        async with transaction(session_factory(engine)) as session:
            session.add(contact)
    finally:
        await engine.dispose()
    directory = record_contact(root / contact.id, timeline=False)  # media as a killed server leaves it
    with TimelineWriter(directory) as writer:
        writer.append("event", event="accepted", actor="user:1", to="connected")
    torn = (directory / TIMELINE).read_bytes() + b'{"t":"2026-12-02T10:00:00.000Z","seq":2,"te'
    (directory / TIMELINE).write_bytes(torn)  # killed in the middle of a line
    # an event the dead instance's stream holds, never copied into the file
    await redis_client.xadd(
        redis_keys.timeline(contact.id),
        {"k": "chat", "t": "2026-12-02T10:00:01.000Z", "i": "other", "f": json.dumps({"text": "still there?"})},
    )
    # and a manifest written by an instance that died before appending its ledger entry
    unchained = record_contact(root / "unchained1", timeline=False)
    write_manifest(unchained, build_manifest(
        unchained, metadata={"topic": "cards"}, pauses=[], previous_hash=None, status="complete"
    ))
    server = await _instance(fast_settings)
    try:
        entry = await sealed(server.app, contact.id)
        chained = await sealed(server.app, "unchained1")
    finally:
        await server.close()
    assert chained.status == "complete" and chained.manifest_hash == hash_file(unchained / MANIFEST)[0]
    report = await verify(server.app[appkeys.DB], LocalStorage(root), contact_id="unchained1")
    assert report.ok, report.problems
    assert entry.status == "incomplete"
    lines = read_timeline(directory)
    # the torn line stays as found (ended, reported), then the writer carries on
    assert [line for line, _ in lines.damaged] == [2] and lines.torn is None
    assert [e["kind"] for e in lines.events] == ["event", "recorder_failure", "chat", "recording_incomplete"]
    assert lines.events[2]["text"] == "still there?" and lines.events[2]["instance"] == "other"
    manifest = manifest_of(directory)
    assert manifest["status"] == "incomplete" and manifest["metadata"]["outcome"]["state"] == "ended"
    assert {f["name"] for f in manifest["files"]} == {"customer-audio-0.webm", "customer-video-0.webm", TIMELINE}
    report = await verify(server.app[appkeys.DB], LocalStorage(root), contact_id=contact.id)
    assert report.ok, report.problems


async def _call_then_kill(base: str, server: subprocess.Popen[str]) -> str:
    """A video call with chat through the server process, killed (SIGKILL) mid-call."""
    customer, agent = SignallingClient(base), SignallingClient(base)
    peers = [SyntheticPeer(ICE, name="customer"), SyntheticPeer(ICE, name="advisor")]
    try:
        await agent.login("adv", PASSWORD)
        await agent.connect()
        await agent.request("agent.status", status="available")
        await customer.as_guest()
        await customer.connect()
        contact_id = str(
            (await customer.request("session.start", channels=["video"], language="en", skip_bot=True))["contact_id"]
        )
        await agent.wait_for("offer", contact_id=contact_id, timeout=15)
        await agent.request("offer.accept", contact_id=contact_id)
        await customer.request("chat.send", contact_id=contact_id, text="before the crash")
        await asyncio.gather(negotiate(customer, contact_id, peers[0]), negotiate(agent, contact_id, peers[1]))
        await until(lambda: peers[0].stats.stamped >= 30 and peers[1].stats.stamped >= 30, 30)
        await asyncio.sleep(3)
        os.kill(server.pid, signal.SIGKILL)
        return contact_id
    finally:
        for peer in peers:
            await peer.close()
        for client in (customer, agent):
            with contextlib.suppress(Exception):
                await client.close()


def test_a_server_killed_mid_call_is_adopted_at_restart_sealed_incomplete_and_the_files_play(
    tmp_path: Path, redis_url: str
) -> None:
    import redis as sync_redis

    port = free_port()
    env = cli_env(
        CC_VAR_DIR=str(tmp_path / "var"), CC_PORT=str(port), CC_LOG_JSON="false",
        CC_REDIS_URL=redis_url, CC_ICE_HOST_ADDRESSES="127.0.0.1", CC_BOT_ENABLED="false",
        # nobody comes back: the restarted server adopts the call, and the graces end it
        CC_CUSTOMER_GRACE_S="1", CC_ADVISOR_GRACE_S="1", CC_PRESENCE_LEASE_S="2",
    )
    assert run_cli("db", "upgrade", env=env).returncode == 0
    created = run_cli(
        "users", "create", "adv", "--role", "advisor", "--languages", "en", "--skills", "general:3",
        "--password-stdin", env=env, input=PASSWORD + "\n",
    )
    assert created.returncode == 0, created.stderr
    sync_redis.Redis.from_url(redis_url).flushdb()
    base = f"http://127.0.0.1:{port}"

    def serve() -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "contact_center", "serve"],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        wait_ready(base, process=process)
        return process

    first = serve()
    try:
        contact_id = asyncio.run(_call_then_kill(base, first))
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == -signal.SIGKILL
    directory = tmp_path / "var" / "recordings" / contact_id
    assert not (directory / MANIFEST).exists()

    second = serve()
    try:
        deadline = time.monotonic() + 60
        while not (directory / MANIFEST).exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (directory / MANIFEST).exists(), "not sealed after the restart"
        verified = run_cli("recordings", "verify", "--contact", contact_id, env=env)
        listed = run_cli("recordings", "verify", "--contact", contact_id, "--json", env=env)
    finally:
        second.send_signal(signal.SIGINT)
        second.wait(timeout=30)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(listed.stdout.splitlines()[-1])["ok"]
    manifest = manifest_of(directory)
    # nobody came back: abandoned by the customer's grace, or ended after the wrap-up the
    # advisor's grace led to, whichever ran out first
    assert manifest["status"] == "incomplete"
    assert manifest["metadata"]["outcome"]["state"] in ("abandoned", "ended")
    lines = read_timeline(directory).events
    kinds = [e.get("event") or e["kind"] for e in lines]
    assert kinds.index("accepted") < kinds.index("chat") < kinds.index("media_open")
    ended = next(i for i, e in enumerate(lines) if e.get("to") in ("abandoned", "ended"))
    assert kinds.index("media_open") < kinds.index("media_adopted") < ended, kinds
    assert kinds[-1] == "recording_incomplete" and "media_close" not in kinds  # killed before
    tracks = sorted(p for p in directory.iterdir() if p.suffix == ".webm")
    assert [p.name for p in tracks] == [
        "advisor-audio-1.webm", "advisor-video-1.webm", "customer-audio-1.webm", "customer-video-1.webm"
    ]
    for path in tracks:  # playable up to the kill: ~3 s, less the open cluster
        with av.open(str(path)) as container:
            frames = sum(1 for _ in container.decode(container.streams[0]))
        assert frames >= (20 if "video" in path.name else 50), (path.name, frames)
        described = next(f for f in manifest["files"] if f["name"] == path.name)
        assert described["duration_s"] and described["duration_s"] > 1.0, described


# ---------------------------------------------------------------- upload to S3 (Object Lock)


@pytest.fixture(scope="module")
def s3_endpoint():  # type: ignore[no-untyped-def]
    """moto's S3 server (Object Lock included) in a thread of this process, on loopback."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


async def test_sealed_recordings_are_uploaded_in_the_background_with_retries_and_object_lock(
    fast_settings: Settings, redis_client, s3_endpoint: str, caplog
) -> None:
    import uuid
    from datetime import UTC, datetime, timedelta

    import boto3
    from pydantic import SecretStr

    from recordings.storage import S3Settings, S3Storage

    bucket = f"rec-{uuid.uuid4().hex[:12]}"
    settings = fast_settings.model_copy(
        update={
            "recordings_url": f"s3://{bucket}/calls",
            "recordings_s3_endpoint": s3_endpoint,
            "recordings_s3_access_key": "testing",
            "recordings_s3_secret_key": SecretStr("testing"),
            "recordings_upload_backoff_s": 0.3,
            "recordings_retention_topics": "cards=10y",
        }
    )
    s3 = boto3.client(
        "s3", endpoint_url=s3_endpoint, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )
    caplog.set_level(logging.WARNING, logger="contact_center.contacts.sealing")
    server = TestServer(create_app(settings), host="127.0.0.1", port=settings.port)
    await server.start_server()
    try:
        user = await make_user(settings, "advisor", languages=["en"], skills={"cards": 3})
        agent, customer = SignallingClient(str(server.make_url(""))), SignallingClient(str(server.make_url("")))
        await agent.login(user.username, PASSWORD)
        await agent.connect()
        await agent.request("agent.status", status="available")
        await customer.as_guest()
        await customer.connect()
        contact_id = (await customer.request("session.start", channels=["text"], language="en", topic="cards", skip_bot=True))["contact_id"]
        await agent.wait_for("offer", contact_id=contact_id)
        await agent.request("offer.accept", contact_id=contact_id)
        await customer.request("chat.send", contact_id=contact_id, text="hello")
        await agent.request("session.end", contact_id=contact_id)
        await agent.request("wrapup.done", contact_id=contact_id)
        entry = await sealed(server.app, contact_id)
        # the bucket does not exist yet: the upload fails, and is tried again once it does
        async with asyncio.timeout(20):
            while not any("upload of" in r.getMessage() for r in caplog.records):
                await asyncio.sleep(0.05)
        s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
        async with asyncio.timeout(30):
            while not all(str(v).startswith("s3://") for v in entry.locations.values()):
                await asyncio.sleep(0.1)
                (entry,) = [e for e in await ledger.entries(server.app[appkeys.DB], contact_id=contact_id)]
        for client in (customer, agent):
            await client.close()
    finally:
        await server.close()
    directory = settings.recordings_dir / contact_id  # type: ignore[operator]
    assert not directory.exists(), "the local copy is removed once uploaded"
    names = {MANIFEST, TIMELINE}
    assert entry.locations == {n: f"s3://{bucket}/calls/{contact_id}/{n}" for n in names}
    storage = S3Storage(S3Settings(bucket=bucket, prefix="calls", endpoint_url=s3_endpoint,
                                   access_key="testing", secret_key="testing"))
    assert entry.retain_until is not None
    assert entry.retain_until > datetime.now(UTC) + timedelta(days=365 * 9)  # the topic's 10 y
    for name in names:
        mode, until = storage.retention(contact_id, name) or ("", None)
        assert mode == "COMPLIANCE" and until is not None and until >= entry.retain_until
    report = await verify(server.app[appkeys.DB], storage, contact_id=contact_id)
    assert report.ok and report.files == 1, report.problems  # the timeline (and the manifest)


# ---------------------------------------------------------------- bot turns (a real Rasa)


@pytest.mark.rasa
async def test_bot_turns_are_in_the_timeline_with_intent_and_no_card_number(
    rasa_services, fast_settings: Settings, redis_client
) -> None:
    settings = fast_settings.model_copy(update={"bot_enabled": True, "rasa_url": rasa_services.url})
    server = TestServer(create_app(settings), host="127.0.0.1", port=settings.port)
    await server.start_server()
    customer = SignallingClient(str(server.make_url("")))
    try:
        await customer.as_guest()
        await customer.connect()
        started = await customer.request("session.start", channels=["text"], language="en", topic="cards")
        contact_id = started["contact_id"]
        assert started["state"] == "bot"
        await customer.wait_for("chat.message", contact_id=contact_id, sender="bot", timeout=30)  # greeting
        await customer.request("chat.send", contact_id=contact_id, text="what time do you open?")
        hours = await customer.wait_for("chat.message", contact_id=contact_id, sender="bot", timeout=30)
        await customer.request("chat.send", contact_id=contact_id, text=f"my card {CARD} was stolen")
        await customer.wait_for("session.state", contact_id=contact_id, state="queued", reason="handoff", timeout=30)
        await customer.request("session.end", contact_id=contact_id)
        await sealed(server.app, contact_id)
    finally:
        await customer.close()
        await server.close()
    directory = settings.recordings_dir / contact_id  # type: ignore[operator]
    lines = timeline(directory)
    turns = [e for e in lines if e["kind"] == "bot"]
    assert [t["customer_text"] for t in turns] == ["what time do you open?", f"my card {MASKED} was stolen"]
    assert turns[0]["intent"] == "ask_opening_hours" and turns[0]["confidence"] > 0.5
    assert turns[0]["language"] == "en" and turns[0]["replies"] == [hours["text"]]
    assert turns[0]["handoff"] is None
    assert turns[1]["intent"] == "report_lost_card" and turns[1]["handoff"]["intent"] == "report_lost_card"
    assert turns[1]["handoff"]["skills"] == {"cards": 1}
    assert_no_card((directory / TIMELINE).read_text(encoding="utf-8"), "the timeline")
    handoff = next(e for e in lines if e.get("event") == "handoff")
    assert handoff["actor"] == "bot" and handoff["to"] == "queued"
    manifest = manifest_of(directory)
    assert manifest["metadata"]["intent"] == "report_lost_card"
    assert_no_card((directory / MANIFEST).read_text(encoding="utf-8"), "the manifest")


# ---------------------------------------------------------------- the command line, settings


async def test_contact_center_recordings_commands_use_the_apps_database_and_store(
    server: TestServer, clients, advisor_factory, tmp_path: Path
) -> None:
    customer, agent, contact_id, _ = await connect(clients, advisor_factory)
    await customer.request("chat.send", contact_id=contact_id, text="hello")
    await agent.request("session.end", contact_id=contact_id)
    await agent.request("wrapup.done", contact_id=contact_id)
    await sealed(server.app, contact_id)
    settings = server.app[appkeys.SETTINGS]
    env = cli_env(
        CC_VAR_DIR=str(settings.var_dir), CC_DATABASE_URL=settings.database_url, CC_LOG_JSON="false"
    )

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli("recordings", *args, env=env)

    ok = await asyncio.to_thread(cli, "verify", "--contact", contact_id)
    assert ok.returncode == 0 and "OK:" in ok.stdout, ok.stdout + ok.stderr
    held = await asyncio.to_thread(cli, "hold", contact_id, "--reason", "complaint under review", "--actor", "carol")
    assert held.returncode == 0, held.stderr
    assert (await ledger.entries(server.app[appkeys.DB], contact_id=contact_id))[0].held
    short = await asyncio.to_thread(cli, "unhold", contact_id, "--reason", "no", "--actor", "carol")
    assert short.returncode == 2 and "reason" in short.stderr
    dry = await asyncio.to_thread(cli, "purge", "--dry-run")
    assert dry.returncode == 0 and contact_id not in dry.stdout  # 7 years from now
    out = tmp_path / "export.zip"
    exported = await asyncio.to_thread(cli, "export", "--contact", contact_id, "--out", str(out))
    assert exported.returncode == 0 and out.exists(), exported.stdout + exported.stderr
    timeline_path = settings.recordings_dir / contact_id / TIMELINE
    data = bytearray(timeline_path.read_bytes())
    data[10] ^= 1
    timeline_path.write_bytes(bytes(data))
    tampered = await asyncio.to_thread(cli, "verify", "--contact", contact_id)
    assert tampered.returncode == 1 and f"contact {contact_id} file {TIMELINE}" in tampered.stdout


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("CC_RECORDINGS_RETENTION", "3m", "below the minimum of 6 months"),
        ("CC_RECORDINGS_RETENTION_TOPICS", "complaints=10y,sales=90d", "below the minimum of 6 months"),
        ("CC_RECORDINGS_URL", "https://bucket", "not an s3:// URL"),
        ("CC_RECORDING_PAUSE_LIMIT_S", "0", "CC_RECORDING_PAUSE_LIMIT_S"),
    ],
)
def test_recording_settings_are_checked_at_start(
    tmp_path: Path, variable: str, value: str, message: str
) -> None:
    result = run_cli("db", "current", env=cli_env(CC_VAR_DIR=str(tmp_path), **{variable: value}))
    assert result.returncode == 2
    assert variable in result.stderr and message in result.stderr, result.stderr


async def test_a_rejected_offer_and_its_reason_are_routing_decisions_in_the_timeline(
    server: TestServer, clients, advisor_factory
) -> None:
    user = await advisor_factory()
    agent = await clients(username=user.username)
    await agent.request("agent.status", status="available")
    customer = await clients(guest=True)
    contact_id = (await customer.request("session.start", channels=["text"], language="en", skip_bot=True))["contact_id"]
    await agent.wait_for("offer", contact_id=contact_id)
    await agent.request("offer.reject", contact_id=contact_id)
    await customer.wait_for("session.state", contact_id=contact_id, reason="offer_rejected")
    await customer.request("session.end", contact_id=contact_id)
    await sealed(server.app, contact_id)
    lines = timeline(server.app[appkeys.SETTINGS].recordings_dir / contact_id)
    routing = [(e["decision"], e["agent_id"]) for e in lines if e["kind"] == "routing"]
    assert routing[:2] == [("offer_created", str(user.id)), ("offer_rejected", str(user.id))]
    created = next(e for e in lines if e.get("decision") == "offer_created")
    assert created["explanation"]["ring"] == 0 and created["explanation"]["winner"]["agent_id"] == str(user.id)
    assert state_changes(lines) == ["queued", "offered", "queued", "abandoned"]
