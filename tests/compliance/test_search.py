"""Every search filter, sorting and paging, on the test database (SQLite or PostgreSQL)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contact_center import appkeys
from contact_center.compliance.search import SearchQuery, search
from contact_center.db.engine import transaction
from contact_center.db.models import ComplianceCheck, ContactEvent, Role
from recordings import ledger, retention
from tests.compliance.conftest import Officer
from tests.compliance.recording import Line, make_contact
from tests.helpers import make_user

T0 = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)


@pytest.fixture
async def corpus(client: Any, settings: Any) -> dict[str, Any]:
    """Five contacts that differ in every way the search can tell apart."""
    db = client.app[appkeys.DB]
    marker = f"S{uuid.uuid4().hex[:8]}"
    ann = await make_user(settings, Role.ADVISOR, display_name=f"Ann {marker}")
    bob = await make_user(settings, Role.ADVISOR, display_name=f"Bob {marker}")
    specs = {
        "c1": dict(
            language="en",
            topic="cards",
            channels=("text", "video"),
            vip=True,
            advisor_id=ann.id,
            intent="lost_card",
            seconds=300,
            started=T0,
            lines=(Line("customer", "my card is lost", 3),),
        ),
        "c2": dict(
            language="zh",
            topic="loans",
            channels=("voice",),
            advisor_id=bob.id,
            intent="loan_enquiry",
            seconds=60,
            started=T0 + timedelta(hours=1),
            lines=(Line("customer", "我想申请贷款", 3),),
        ),
        "c3": dict(
            language="yue",
            topic="cards",
            channels=("text",),
            seconds=30,
            started=T0 + timedelta(hours=2),
            lines=(Line("bot", "你好，有咩可以幫到你？", 1),),
        ),
        "c4": dict(
            language="en",
            topic=None,
            channels=("text",),
            state="abandoned",
            seconds=10,
            started=T0 + timedelta(hours=3),
        ),
        "c5": dict(
            language="en",
            topic="cards",
            channels=("video",),
            state="connected",
            advisor_id=ann.id,
            started=T0 + timedelta(hours=4),
        ),
    }
    ids: dict[str, str] = {}
    names = {
        "c1": "Alice Wong",
        "c2": "Bruce Li",
        "c3": "Chan Tai Man",
        "c4": "Dora Ho",
        "c5": "Eric Lam",
    }
    for key, spec in specs.items():
        made = await make_contact(db, customer_name=f"{names[key]} {marker}", **spec)  # type: ignore[arg-type]
        ids[key] = made.contact.id
    # c2 was transferred: Ann took it first, then Bob
    async with transaction(db) as session:
        session.add(
            ContactEvent(
                contact_id=ids["c2"],
                at=T0 + timedelta(hours=1, seconds=6),
                actor=f"user:{ann.id}",
                kind="accepted",
            )
        )
    # c1, c2, c3 sealed; c1 held and verified; c2 checked and failed; c3 never checked
    for key in ("c1", "c2", "c3"):
        await ledger.append_seal(
            db,
            contact_id=ids[key],
            manifest_hash="0" * 64,
            status="complete",
            locations={},
            retain_until=T0 + timedelta(days=3000),
        )
    await retention.set_hold(db, ids["c1"], reason="Litigation hold L-1", actor="user:1")
    async with transaction(db) as session:
        session.add(ComplianceCheck(contact_id=ids["c1"], actor="user:1", ok=True))
        session.add(ComplianceCheck(contact_id=ids["c2"], actor="user:1", ok=True))
        session.add(ComplianceCheck(contact_id=ids["c2"], actor="user:1", ok=False, problems=["x"]))
    return {"db": db, "marker": marker, "ids": ids, "ann": ann, "bob": bob}


async def _find(corpus: dict[str, Any], **filters: Any) -> list[str]:
    """The corpus's keys (c1..c5) matching ``filters``, in the order returned."""
    back = {v: k for k, v in corpus["ids"].items()}
    query = SearchQuery.model_validate({"customer": corpus["marker"], "per_page": 100, **filters})
    async with transaction(corpus["db"]) as session:
        page = await search(session, query)
    return [back[row["id"]] for row in page["results"]]


async def test_every_filter(corpus: dict[str, Any]) -> None:
    ann, bob = corpus["ann"].id, corpus["bob"].id
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({}, {"c1", "c2", "c3", "c4", "c5"}),
        ({"language": ["zh", "yue"]}, {"c2", "c3"}),
        ({"topic": ["cards"]}, {"c1", "c3", "c5"}),
        ({"intent": ["lost_card"]}, {"c1"}),
        ({"intent": ["lost_card", "loan_enquiry"]}, {"c1", "c2"}),
        ({"channel": ["video"]}, {"c1", "c5"}),
        ({"channel": ["voice", "video"]}, {"c1", "c2", "c5"}),
        ({"outcome": ["served"]}, {"c1", "c2"}),
        ({"outcome": ["bot"]}, {"c3"}),
        ({"outcome": ["abandoned"]}, {"c4"}),
        ({"outcome": ["live"]}, {"c5"}),
        ({"vip": True}, {"c1"}),
        ({"vip": False}, {"c2", "c3", "c4", "c5"}),
        ({"advisor": [ann]}, {"c1", "c2", "c5"}),  # c2 through its first leg
        ({"advisor": [bob]}, {"c2"}),
        ({"min_duration_s": 60}, {"c1", "c2"}),
        ({"max_duration_s": 30}, {"c3", "c4"}),
        ({"min_duration_s": 20, "max_duration_s": 100}, {"c2", "c3"}),
        ({"held": True}, {"c1"}),
        ({"held": False}, {"c2", "c3", "c4", "c5"}),
        ({"verify": ["verified"]}, {"c1"}),
        ({"verify": ["failed"]}, {"c2"}),  # the last check counts
        ({"verify": ["unchecked"]}, {"c3"}),
        ({"verify": ["unsealed"]}, {"c4", "c5"}),
        ({"from": T0 + timedelta(hours=1), "to": T0 + timedelta(hours=3)}, {"c2", "c3"}),
        (
            {"from": (T0 + timedelta(hours=4)).astimezone(UTC).replace(tzinfo=None).isoformat()},
            {"c5"},
        ),
        ({"q": "lost"}, {"c1"}),
        ({"q": "贷款"}, {"c2"}),
        ({"q": "幫到"}, {"c3"}),  # the bot's lines are searched too
        ({"topic": ["cards"], "channel": ["video"], "outcome": ["served"]}, {"c1"}),
    ]
    for filters, expected in cases:
        assert set(await _find(corpus, **filters)) == expected, filters


async def test_customer_by_name_ref_or_contact_id(corpus: dict[str, Any]) -> None:
    async with transaction(corpus["db"]) as session:
        by_name = await search(
            session, SearchQuery(customer=f"chan tai man {corpus['marker']}".upper())
        )
        assert [r["id"] for r in by_name["results"]] == [corpus["ids"]["c3"]]
        ref = by_name["results"][0]["customer"]["ref"]
        by_ref = await search(session, SearchQuery(customer=ref))
        by_id = await search(session, SearchQuery(customer=corpus["ids"]["c3"]))
        no_wildcards = await search(session, SearchQuery(customer=f"%{corpus['marker']}"))
    assert [r["id"] for r in by_ref["results"]] == [corpus["ids"]["c3"]]
    assert [r["id"] for r in by_id["results"]] == [corpus["ids"]["c3"]]
    assert no_wildcards["total"] == 0


async def test_what_a_result_says(corpus: dict[str, Any]) -> None:
    async with transaction(corpus["db"]) as session:
        page = await search(
            session, SearchQuery(customer=corpus["marker"], sort="started", order="asc")
        )
    first, second = page["results"][:2]
    assert first["id"] == corpus["ids"]["c1"]
    assert first["duration_s"] == 300.0 and first["intent"] == "lost_card" and first["vip"] is True
    assert first["held"] is True and first["verify"] == "verified" and first["seal"] == "complete"
    assert first["started_at"] == "2026-11-03T09:00:00Z"
    assert [a["name"] for a in first["advisors"]] == [f"Ann {corpus['marker']}"]
    assert [a["name"] for a in second["advisors"]] == [
        f"Ann {corpus['marker']}",
        f"Bob {corpus['marker']}",
    ]
    assert second["verify"] == "failed" and second["outcome"] == "served"


@pytest.mark.parametrize(
    ("sort", "ascending"),
    [
        ("started", ["c1", "c2", "c3", "c4", "c5"]),
        ("duration", ["c4", "c3", "c2", "c1", "c5"]),  # still live: no duration, last
        ("customer", ["c1", "c2", "c3", "c4", "c5"]),
        ("language", ["c1", "c4", "c5", "c3", "c2"]),  # en (by id), yue, zh
        ("outcome", ["c4", "c3", "c5", "c1", "c2"]),  # abandoned, bot, live, served
    ],
)
async def test_sorting(corpus: dict[str, Any], sort: str, ascending: list[str]) -> None:
    up = await _find(corpus, sort=sort, order="asc")
    down = await _find(corpus, sort=sort, order="desc")
    if sort == "language":  # ties are ordered by id: compare the groups
        assert [set(up[:3]), up[3], up[4]] == [{"c1", "c4", "c5"}, "c3", "c2"]
        return
    if sort == "outcome":
        assert up[:3] == ["c4", "c3", "c5"] and set(up[3:]) == {"c1", "c2"}
        return
    assert up == ascending
    without_missing = [k for k in ascending if not (sort == "duration" and k == "c5")]
    assert [k for k in down if k in without_missing] == list(reversed(without_missing))
    if sort == "duration":
        assert down[-1] == "c5"  # missing values last either way


async def test_advisor_sort_puts_contacts_without_one_last(corpus: dict[str, Any]) -> None:
    up = await _find(corpus, sort="advisor", order="asc")
    assert set(up[-2:]) == {"c3", "c4"}  # no advisor now (c2's current one is Bob)


async def test_paging(corpus: dict[str, Any]) -> None:
    seen: list[str] = []
    for number in (1, 2, 3):
        query = SearchQuery(
            customer=corpus["marker"], per_page=2, page=number, sort="started", order="asc"
        )
        async with transaction(corpus["db"]) as session:
            page = await search(session, query)
        assert page["total"] == 5 and page["pages"] == 3 and page["page"] == number
        seen += [row["id"] for row in page["results"]]
    assert seen == [corpus["ids"][k] for k in ("c1", "c2", "c3", "c4", "c5")]


async def test_the_api_reads_lists_and_refuses_bad_values(
    officer: Officer, corpus: dict[str, Any]
) -> None:
    await officer.open_case()
    page = await officer.json(
        "/api/compliance/search",
        customer=corpus["marker"],
        language="zh,yue",
        sort="duration",
        order="asc",
        per_page="1",
    )
    assert page["total"] == 2 and len(page["results"]) == 1 and page["pages"] == 2
    repeated = await officer.get(
        "/api/compliance/search",
        params=[("customer", corpus["marker"]), ("channel", "voice"), ("channel", "video")],
    )
    assert (await repeated.json())["total"] == 3
    for bad in (
        {"sort": "name"},
        {"per_page": "1000"},
        {"vip": "maybe"},
        {"outcome": "won"},
        {"from": "yesterday"},
        {"q": "!!!"},
        {"unknown": "x"},
    ):
        response = await officer.get("/api/compliance/search", params=bad)
        assert response.status == 400, bad
        assert (await response.json())["error"] in ("bad_field", "bad_request"), bad
    facets = await officer.json("/api/compliance/facets")
    assert {"lost_card", "loan_enquiry"} <= set(facets["intents"])
    assert f"Ann {corpus['marker']}" in [a["name"] for a in facets["advisors"]]
    assert facets["outcomes"] == ["served", "bot", "abandoned", "live"]
