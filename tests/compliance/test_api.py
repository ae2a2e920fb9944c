"""The compliance API through the real app: the grant, one audit row per access, the replay's
data, the manifest and its re-check, legal hold, and export round trips."""

from __future__ import annotations

import io
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest

from contact_center import appkeys
from contact_center.db.models import Role
from recordings.export import verify_export
from tests.compliance.conftest import REASON, Officer, audit_rows, last_audit_id
from tests.compliance.recording import Line, make_contact, record, seal
from tests.helpers import make_user

LINES = (
    Line("bot", "Hello, how can I help?", 2.0),
    Line("customer", "I want to dispute a transfer of HK$500", 4.0),
    Line("advisor", "I can see the transfer, let me check", 12.5),
    Line("customer", "我想查詢轉賬記錄", 13.5),
)


@pytest.fixture
async def sealed(client: Any, settings: Any) -> dict[str, Any]:
    """A video contact served by an advisor, recorded (with a secure pause) and sealed."""
    advisor = await make_user(settings, Role.ADVISOR, display_name="Emma Wong")
    db = client.app[appkeys.DB]
    made = await make_contact(
        db,
        customer_name=f"Mei Chan {uuid.uuid4().hex[:6]}",
        channels=("text", "video"),
        advisor_id=advisor.id,
        intent="dispute_transaction",
        lines=LINES,
    )
    directory = await record(
        settings.recordings_dir,
        made,
        timeline=[
            (12.8, "pause", {"by": f"user:{advisor.id}", "reason": "card number read out"}),
            (13.2, "resume", {"by": f"user:{advisor.id}"}),
        ],
    )
    result = await seal(db, directory)
    return {
        "made": made,
        "id": made.contact.id,
        "dir": directory,
        "seal": result,
        "advisor": advisor,
    }


async def test_a_case_needs_a_reason_of_a_few_words(officer: Officer) -> None:
    for reason in ("", "   ", "because", "check it"):
        response = await officer.post("/api/compliance/grants", {"reason": reason})
        assert response.status == 403
        assert (await response.json())["error"] == "reason_required"
    response = await officer.get("/api/compliance/search")
    assert response.status == 403
    assert (await response.json())["error"] == "reason_required"
    case = await officer.open_case("客戶投訴轉賬糾紛個案")  # Chinese: no spaces between words
    assert case["reason"] == "客戶投訴轉賬糾紛個案" and case["contacts"] == []


async def test_every_access_leaves_exactly_one_audit_row_with_the_reason(
    officer: Officer, sealed: dict[str, Any]
) -> None:
    contact_id = sealed["id"]
    case = await officer.open_case(REASON)
    rows = await audit_rows(officer.client, officer.ref)
    assert [r.action for r in rows] == ["compliance.grant"]
    assert rows[0].reason == REASON and rows[0].detail["grant"] == case["id"]

    refused = await officer.get(f"/api/compliance/contacts/{contact_id}")
    assert refused.status == 403 and (await refused.json())["error"] == "not_in_grant"
    await officer.take_in(contact_id)
    name = "customer-video-1.webm"
    calls = [
        (
            "search",
            "GET",
            "/api/compliance/search",
            {"customer": sealed["made"].contact.customer_name},
        ),
        ("view", "GET", f"/api/compliance/contacts/{contact_id}", None),
        ("timeline", "GET", f"/api/compliance/contacts/{contact_id}/timeline", None),
        ("manifest", "GET", f"/api/compliance/contacts/{contact_id}/manifest", None),
        ("media", "GET", f"/api/compliance/contacts/{contact_id}/media/{name}", None),
        ("verify", "POST", f"/api/compliance/contacts/{contact_id}/verify", None),
        (
            "hold",
            "POST",
            f"/api/compliance/contacts/{contact_id}/hold",
            {"held": True, "reason": "Regulator request SFC-7781"},
        ),
        (
            "unhold",
            "POST",
            f"/api/compliance/contacts/{contact_id}/hold",
            {"held": False, "reason": "Regulator closed SFC-7781"},
        ),
        ("export", "POST", f"/api/compliance/contacts/{contact_id}/exports", None),
        ("audit_view", "GET", "/api/compliance/audit", {"contact": contact_id}),
    ]
    for action, method, path, payload in calls:
        before = await last_audit_id(officer.client)
        if method == "GET":
            response = await officer.get(path, params=payload or {})
        else:
            response = await officer.post(path, payload)
        assert response.status in (200, 201), (action, response.status, await response.text())
        await response.read()
        rows = await audit_rows(officer.client, officer.ref, before)
        assert [r.action for r in rows] == [f"compliance.{action}"], action
        row = rows[0]
        assert row.reason == REASON, action
        assert row.address == "127.0.0.1", action
        assert row.detail["grant"] == case["id"], action
        if action not in ("search", "audit_view"):
            assert row.target == f"contact:{contact_id}", action
    search_row = (await audit_rows(officer.client, officer.ref))[2]
    assert search_row.action == "compliance.search" and search_row.detail["contacts"] == [
        contact_id
    ]


async def test_a_grant_is_the_officers_own_and_cannot_be_altered(
    officer: Officer, sealed: dict[str, Any], client: Any, settings: Any
) -> None:
    await officer.open_case(contacts=[sealed["id"]])
    token = officer.grant
    assert token
    head, payload, mac = token.split(".")
    forged = f"{head}.{payload[:-2]}AA.{mac}"
    for bad in (forged, token + "x", "g1.e30.AAAA", "nonsense"):
        response = await client.get(
            f"/api/compliance/contacts/{sealed['id']}", headers={"X-Compliance-Grant": bad}
        )
        assert response.status == 403 and (await response.json())["error"] == "bad_grant"
    # another officer's session with this officer's grant
    other = await make_user(settings, Role.COMPLIANCE)
    from tests.helpers import login

    assert (await login(client, other.username)).status == 303
    response = await client.get(
        f"/api/compliance/contacts/{sealed['id']}", headers={"X-Compliance-Grant": token}
    )
    assert response.status == 403 and "someone else" in (await response.json())["message"]


async def test_an_expired_grant_is_refused(
    officer: Officer, sealed: dict[str, Any], monkeypatch
) -> None:
    import time

    from contact_center.compliance import grants

    case = await officer.open_case(contacts=[sealed["id"]])
    later = case["expires_at"] + 1
    monkeypatch.setattr(grants.time, "time", lambda: later)
    response = await officer.get(f"/api/compliance/contacts/{sealed['id']}")
    assert response.status == 403 and (await response.json())["error"] == "grant_expired"
    assert time.time() == later


async def test_contact_view_and_timeline_of_a_sealed_recording(
    officer: Officer, sealed: dict[str, Any]
) -> None:
    contact_id = sealed["id"]
    await officer.open_case(contacts=[contact_id])
    view = await officer.json(f"/api/compliance/contacts/{contact_id}")
    assert view["customer"]["name"] == sealed["made"].contact.customer_name
    assert [a["name"] for a in view["advisors"]] == ["Emma Wong"]
    assert view["intent"] == "dispute_transaction"
    assert view["recording"]["status"] == "complete" and view["recording"]["held"] is False
    assert view["check"] is None
    assert {f["name"] for f in view["files"]} >= {
        "manifest.json",
        "timeline.jsonl",
        "customer-video-1.webm",
    }

    replay = await officer.json(f"/api/compliance/contacts/{contact_id}/timeline")
    assert replay["source"] == "timeline"
    tracks = {t["name"]: t for t in replay["tracks"]}
    assert set(tracks) == {
        f"{p}-{k}-1.webm" for p in ("customer", "advisor") for k in ("audio", "video")
    }
    # each party's files start when its first frame came, on the contact's clock
    assert tracks["customer-video-1.webm"]["offset_s"] == pytest.approx(10.0, abs=0.01)
    assert tracks["advisor-video-1.webm"]["offset_s"] == pytest.approx(11.5, abs=0.01)
    assert tracks["advisor-video-1.webm"]["duration_s"] == pytest.approx(3.0, abs=0.2)
    assert tracks["customer-video-1.webm"]["url"].endswith("/media/customer-video-1.webm")
    chats = [e for e in replay["entries"] if e["kind"] == "chat"]
    assert [c["text"] for c in chats] == [line.text for line in LINES]
    assert [c["offset_s"] for c in chats] == pytest.approx(
        [line.after_s for line in LINES], abs=0.01
    )
    assert chats[1]["who"] == "customer"
    assert replay["pauses"] == [
        {
            "start": replay["pauses"][0]["start"],
            "end": replay["pauses"][0]["end"],
            "start_s": pytest.approx(12.8, abs=0.01),
            "end_s": pytest.approx(13.2, abs=0.01),
            "by": f"user:{sealed['advisor'].id}",
            "reason": "card number read out",
        }
    ]
    offsets = [e["offset_s"] for e in replay["entries"]]
    assert offsets == sorted(offsets)


async def test_timeline_of_an_unsealed_contact_comes_from_the_database(
    officer: Officer, client: Any, settings: Any
) -> None:
    advisor = await make_user(settings, Role.ADVISOR, display_name="Ken Lau")
    made = await make_contact(
        client.app[appkeys.DB],
        customer_name="Walk In",
        advisor_id=advisor.id,
        lines=LINES[:2],
        state="connected",
    )
    await record(settings.recordings_dir, made, audio=False)  # media so far, no timeline
    await officer.open_case(contacts=[made.contact.id])
    replay = await officer.json(f"/api/compliance/contacts/{made.contact.id}/timeline")
    assert replay["source"] == "database"
    kinds = [(e["kind"], e["label"]) for e in replay["entries"]]
    assert kinds == [
        ("event", "created"),
        ("bot", "chat"),
        ("chat", "chat"),
        ("bot", "handoff"),
        ("routing", "offered"),
        ("offer", "accepted"),
    ]
    routing = next(e for e in replay["entries"] if e["kind"] == "routing")
    assert routing["data"]["explanation"] == {"why": "best"}
    assert {t["name"] for t in replay["tracks"]} == {
        "customer-video-1.webm",
        "advisor-video-1.webm",
    }
    view = await officer.json(f"/api/compliance/contacts/{made.contact.id}")
    assert view["recording"] is None
    refused = await officer.post(f"/api/compliance/contacts/{made.contact.id}/verify")
    assert refused.status == 409


async def test_manifest_verify_and_a_changed_byte(officer: Officer, sealed: dict[str, Any]) -> None:
    contact_id = sealed["id"]
    await officer.open_case(contacts=[contact_id])
    manifest = await officer.json(f"/api/compliance/contacts/{contact_id}/manifest")
    assert manifest["matches_ledger"] is True
    assert manifest["ledger"]["manifest_hash"] == manifest["manifest_sha256"]
    assert {f["name"] for f in manifest["manifest"]["files"]} >= {"customer-video-1.webm"}
    assert manifest["check"] is None

    response = await officer.post(f"/api/compliance/contacts/{contact_id}/verify")
    first = await response.json()
    assert response.status == 200 and first["ok"] is True and first["problems"] == []
    assert first["files"] >= 5
    media = Path(sealed["dir"]) / "advisor-video-1.webm"
    data = bytearray(media.read_bytes())
    data[len(data) // 2] ^= 0x01
    media.write_bytes(bytes(data))
    again = await (await officer.post(f"/api/compliance/contacts/{contact_id}/verify")).json()
    assert again["ok"] is False
    assert any("advisor-video-1.webm" in p and "SHA-256" in p for p in again["problems"])
    manifest = await officer.json(f"/api/compliance/contacts/{contact_id}/manifest")
    assert manifest["check"]["ok"] is False
    found = await officer.json(
        "/api/compliance/search", customer=sealed["made"].contact.customer_name
    )
    assert found["results"][0]["verify"] == "failed"


async def test_hold_and_release_through_the_api(officer: Officer, sealed: dict[str, Any]) -> None:
    contact_id = sealed["id"]
    await officer.open_case(contacts=[contact_id])
    path = f"/api/compliance/contacts/{contact_id}/hold"
    short = await officer.post(path, {"held": True, "reason": "x"})
    assert short.status == 400 and "reason" in (await short.json())["message"]
    held = await (
        await officer.post(path, {"held": True, "reason": "Litigation hold LIT-2026-04"})
    ).json()
    assert held["recording"]["held"] is True
    assert held["recording"]["hold_reason"] == "Litigation hold LIT-2026-04"
    assert held["recording"]["held_by"] == officer.ref
    name = sealed["made"].contact.customer_name
    assert (await officer.json("/api/compliance/search", customer=name, held="true"))["total"] == 1
    released = await (
        await officer.post(path, {"held": False, "reason": "Litigation settled, hold ends"})
    ).json()
    assert released["recording"]["held"] is False
    assert (await officer.json("/api/compliance/search", customer=name, held="true"))["total"] == 0


def _flip(data: bytes, member: str) -> bytes:
    """The zip with one byte of ``member``'s stored data changed."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.getinfo(member)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    changed = bytearray(data)
    changed[start + info.compress_size // 2] ^= 0x20
    return bytes(changed)


async def test_export_round_trip_and_damage_named(
    officer: Officer, sealed: dict[str, Any], tmp_path: Path
) -> None:
    contact_id = sealed["id"]
    await officer.open_case(contacts=[contact_id])
    response = await officer.post(f"/api/compliance/contacts/{contact_id}/exports")
    assert response.status == 201
    made = await response.json()
    assert made["url"].startswith("/api/compliance/exports/")
    assert "customer-video-1.webm" in made["files"]
    download = await officer.get(made["url"])
    assert download.status == 200
    assert download.headers["Content-Type"] == "application/zip"
    data = await download.read()
    import hashlib

    assert hashlib.sha256(data).hexdigest() == made["sha256"] and len(data) == made["size"]
    rows = await audit_rows(officer.client, officer.ref)
    exported = [r for r in rows if r.action == "compliance.export"]
    assert exported[0].detail["sha256"] == made["sha256"]
    assert [r.action for r in rows][-1] == "compliance.export_download"

    good = tmp_path / "export.zip"
    good.write_bytes(data)
    assert verify_export(good) == []
    for member in ("files/customer-video-1.webm", "ledger/entry.json"):
        bad = tmp_path / f"bad-{member.replace('/', '_')}.zip"
        bad.write_bytes(_flip(data, member))
        problems = verify_export(bad)
        assert problems and any(member in p for p in problems), (member, problems)

    # the grant query parameter works for the download link a browser follows
    plain = await officer.client.get(made["url"], params={"grant": officer.grant})
    assert plain.status == 200
    elsewhere = await officer.client.get(made["url"])
    assert elsewhere.status == 403
