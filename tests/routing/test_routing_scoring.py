"""The pure routing rules, without Redis."""

from __future__ import annotations

from routing.models import AgentState
from routing.policy import parse_policy
from routing.scoring import (
    AgentView,
    ContactView,
    build_snapshot,
    can_serve,
    derive_state,
    expected_wait,
    free_capacity,
    next_ring_at,
    pick_agent,
    pick_contact,
    primary_skill,
    queue_score,
    requirements,
    ring_at,
)

POLICY = parse_policy(
    {
        "languages": ["en", "zh", "yue"],
        "vip_boost": 5,
        "priority_boost_per_minute": 1.0,
        "aging": [
            {"after_s": 30, "lower_proficiency_by": 2},
            {"after_s": 90, "drop_optional": True},
        ],
    }
)


def agent(aid: str, skills: dict[str, int], *, idle: float = 0.0, **kw: object) -> AgentView:
    a = AgentView(
        id=aid,
        languages=frozenset(kw.pop("languages", {"en"})),  # type: ignore[arg-type]
        skills=skills,
        capacity={"text": 3, "voice": 1, "video": 1},
        presence="available",
        idle=idle,
        routed={"text": idle, "voice": idle, "video": idle},
    )
    for k, v in kw.items():
        setattr(a, k, v)
    return a


def contact(cid: str, req: dict[str, int], *, t: float = 0.0, **kw: object) -> ContactView:
    c = ContactView(
        id=cid,
        channel=str(kw.pop("channel", "text")),
        language=str(kw.pop("language", "en")),
        req=req,
        opt=dict(kw.pop("opt", {})),  # type: ignore[call-overload]
        priority=int(kw.pop("priority", 0)),  # type: ignore[call-overload]
        vip=bool(kw.pop("vip", False)),
        enqueued_at=t,
        ring_since=t,
        score=0.0,
    )
    c.score = queue_score(POLICY, priority=c.priority, vip=c.vip, enqueued_at=t)
    return c


def test_queue_score_is_fifo_within_a_priority_and_priority_first_otherwise() -> None:
    early = queue_score(POLICY, priority=0, vip=False, enqueued_at=100.0)
    late = queue_score(POLICY, priority=0, vip=False, enqueued_at=101.0)
    urgent = queue_score(POLICY, priority=1, vip=False, enqueued_at=130.0)
    assert early < late
    assert urgent < early  # one level is worth 60 s of waiting; it waited 30 s less
    vip = queue_score(POLICY, priority=0, vip=True, enqueued_at=200.0)
    assert vip < early  # +5 levels = 300 s


def test_aging_lets_low_priority_overtake_so_nothing_starves() -> None:
    old_low = queue_score(POLICY, priority=0, vip=False, enqueued_at=0.0)
    # a priority-2 contact that arrives more than 120 s later is served after it
    assert old_low < queue_score(POLICY, priority=2, vip=False, enqueued_at=121.0)
    assert old_low > queue_score(POLICY, priority=2, vip=False, enqueued_at=119.0)
    strict = parse_policy({"languages": ["en"], "priority_boost_per_minute": 0})
    assert queue_score(strict, priority=1, vip=False, enqueued_at=1e9) < queue_score(
        strict, priority=0, vip=False, enqueued_at=0.0
    )


def test_rings_relax_minimums_then_drop_optional_skills_never_below_one() -> None:
    req, opt = {"cards": 3, "fx": 1}, {"loans": 4}
    assert ring_at(POLICY, 0.0, 29.9).index == 0
    assert requirements(req, opt, ring_at(POLICY, 0.0, 29.9)) == {"cards": 3, "fx": 1, "loans": 4}
    assert requirements(req, opt, ring_at(POLICY, 0.0, 30.0)) == {"cards": 1, "fx": 1, "loans": 2}
    assert requirements(req, opt, ring_at(POLICY, 0.0, 95.0)) == {"cards": 1, "fx": 1}
    assert next_ring_at(POLICY, 0.0, 10.0) == 30.0
    assert next_ring_at(POLICY, 0.0, 30.0) == 90.0
    assert next_ring_at(POLICY, 0.0, 90.0) is None


def test_voice_and_video_block_other_channels_but_text_does_not() -> None:
    a = agent("a", {}, load={"voice": 1})
    assert free_capacity(POLICY, a, "text") == 0
    assert free_capacity(POLICY, a, "video") == 0
    assert free_capacity(POLICY, a, "voice") == 0
    b = agent("b", {}, load={"text": 2})
    assert free_capacity(POLICY, b, "text") == 1
    assert free_capacity(POLICY, b, "voice") == 1
    relaxed = parse_policy({"languages": ["en"], "exclusive_channels": []})
    assert free_capacity(relaxed, a, "text") == 3


def test_best_agent_is_highest_fit_then_longest_idle() -> None:
    c = contact("c", {"cards": 3}, opt={"fx": 1})
    agents = [
        agent("low", {"cards": 3, "fx": 1}, idle=1.0),
        agent("high-recent", {"cards": 5, "fx": 2}, idle=50.0),
        agent("high-idle", {"cards": 5, "fx": 2}, idle=10.0),
        agent("no-fx", {"cards": 5}, idle=0.0),  # optional skills are required in ring 0
        agent("zh-only", {"cards": 5, "fx": 5}, languages={"zh"}),
        agent("away", {"cards": 5, "fx": 5}, presence="away"),
    ]
    found = pick_agent(agents, c, ring_at(POLICY, 0.0, 1.0), 60.0, POLICY)
    assert found is not None
    best, explanation = found
    assert best.id == "high-idle"
    assert [p.agent_id for p in explanation.candidates] == ["high-idle", "high-recent", "low"]
    assert explanation.winner.fit_required == 5 and explanation.winner.fit_optional == 2
    assert explanation.ring == 0 and explanation.considered == 3
    c.excluded.add("high-idle")
    found = pick_agent(agents, c, ring_at(POLICY, 0.0, 1.0), 60.0, POLICY)
    assert found is not None and found[0].id == "high-recent"


def test_agent_takes_highest_priority_then_longest_waiting_contact_it_can_serve() -> None:
    a = agent("a", {"cards": 2})
    queued = [
        contact("c-late", {"cards": 1}, t=20.0),
        contact("c-early", {"cards": 1}, t=10.0),
        contact("c-skill", {"cards": 4}, t=0.0),  # needs 4: not before ring 1 (then 2)
        contact("c-zh", {}, t=0.0, language="zh"),
        contact("c-vip", {"cards": 1}, t=30.0, vip=True),
    ]
    assert pick_contact(a, queued, 35.0, POLICY).id == "c-vip"  # type: ignore[union-attr]
    assert pick_contact(a, queued[:3], 29.0, POLICY).id == "c-early"  # type: ignore[union-attr]
    assert pick_contact(a, queued[:3], 30.0, POLICY).id == "c-skill"  # type: ignore[union-attr]
    assert not can_serve(POLICY, a, queued[3], 35.0)


def test_derived_states_and_primary_skill() -> None:
    a = agent("a", {})
    assert derive_state(a) == AgentState.AVAILABLE
    a.held = {"c": "offered"}
    assert derive_state(a) == AgentState.BUSY
    a.held, a.wrap_until = {}, 5.0
    assert derive_state(a) == AgentState.WRAP_UP
    a.presence = "away"
    assert derive_state(a) == AgentState.AWAY
    assert primary_skill({"cards": 2, "fx": 3, "aa": 3}) == ("aa", 3)
    assert primary_skill({}) == ("*", 0)


def test_expected_wait_formula() -> None:
    assert expected_wait(1, 180.0, 1, 3) == 60.0
    assert expected_wait(4, 120.0, 2, 1) == 240.0
    assert expected_wait(2, 100.0, 0, 1) == 200.0  # nobody eligible: as if one agent


def test_snapshot_groups_by_language_and_skill() -> None:
    agents = [agent("a", {"cards": 3}), agent("b", {"fx": 2}, presence="offline")]
    queued = [contact("c1", {"cards": 1}, t=10.0), contact("c2", {}, t=40.0, language="zh")]
    stats = {"en|cards|answered": "4", "en|cards|in_sl": "3"}
    snap = build_snapshot(POLICY, agents, queued, stats, 100.0)
    groups = {(g["language"], g["skill"]): g for g in snap["groups"]}
    cards = groups[("en", "cards")]
    assert cards["waiting"] == 1 and cards["longest_wait_s"] == 90.0
    assert cards["agents"]["available"] == 1 and cards["service_level"] == 0.75
    assert groups[("en", "fx")]["agents"]["offline"] == 1
    assert groups[("zh", "general")]["waiting"] == 1
    assert snap["waiting"] == 2 and snap["agents"]["available"] == 1


def test_snapshot_counts_an_agent_with_an_explicit_general_skill_once():
    from routing.policy import load_policy
    from routing.scoring import AgentView, build_snapshot

    agent = AgentView(
        id="a", languages=frozenset({"en"}), skills={"general": 3, "cards": 2},
        capacity={"text": 3, "voice": 1, "video": 1}, presence="available", wrap_until=0.0,
        held={}, load={}, idle=0.0, misses=0,
    )
    snapshot = build_snapshot(load_policy(), [agent], [], {}, 100.0)
    rows = [g for g in snapshot["groups"] if g["language"] == "en" and g["skill"] == "general"]
    assert rows and rows[0]["agents"]["available"] == 1
