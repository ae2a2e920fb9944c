"""Who could take a transfer: pure data in, agent ids out (contacts.transfer_targets)."""

from __future__ import annotations

from contact_center.contacts.transfer_targets import transfer_targets
from routing.policy import load_policy
from routing.scoring import AgentView

POLICY = load_policy()
CAP = {"text": 3, "voice": 1, "video": 1}


def _agent(agent_id: str, **fields: object) -> AgentView:
    fields.setdefault("languages", frozenset({"en"}))
    fields.setdefault("skills", {"loans": 4})
    fields.setdefault("capacity", dict(CAP))
    fields.setdefault("presence", "available")
    return AgentView(id=agent_id, **fields)  # type: ignore[arg-type]


def _targets(agents: list[AgentView], **kw: object):  # type: ignore[no-untyped-def]
    kw.setdefault("channel", "text")
    kw.setdefault("language", "en")
    kw.setdefault("skills", {"loans": 3})
    kw.setdefault("exclude", "1")
    return transfer_targets(POLICY, agents, **kw)  # type: ignore[arg-type]


def test_now_later_and_nobody():
    agents = [
        _agent("1"),  # the one transferring: never a target
        _agent("2"),  # free now
        _agent("3", load={"text": 3}, held={"a": "assigned", "b": "assigned", "c": "assigned"}),
        _agent("4", presence="away"),
        _agent("5", presence="offline"),  # not signed in: not even later
        _agent("6", skills={"loans": 2}),  # below the level
        _agent("7", languages=frozenset({"yue"})),  # not the language
        _agent("8", wrap_until=1e12),  # in wrap-up: later
    ]
    targets = _targets(agents)
    assert targets.now == ("2",) and targets.later == ("3", "4", "8") and targets.anyone
    assert not _targets(agents, skills={"fx": 1}).anyone
    assert not _targets([_agent("1")]).anyone  # only yourself


def test_an_exclusive_call_blocks_a_chat_now_but_not_later():
    on_a_call = _agent("2", load={"voice": 1}, held={"v": "assigned"})
    targets = _targets([on_a_call])
    assert targets.now == () and targets.later == ("2",)
