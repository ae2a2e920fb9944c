"""chatbot.handoff: splitting REST-channel replies, building a handoff without the bot."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from chatbot.handoff import Handoff, Turn, handoff_for, split_bot_messages


def test_splits_texts_and_handoff() -> None:
    messages: list[dict[str, Any]] = [
        {"recipient_id": "s1", "text": "冇問題，而家幫你轉駁客戶經理，請稍等。"},
        {"recipient_id": "s1", "custom": {"handoff": {
            "language": "yue", "intent": "request_human", "skills": {"general": 1},
            "priority": 0, "reason": "customer_asked_for_advisor",
            "transcript": [{"role": "customer", "text": "我想搵真人傾", "timestamp": 1.0,
                            "intent": "request_human"}],
        }}},
    ]
    texts, handoff = split_bot_messages(messages)
    assert texts == ["冇問題，而家幫你轉駁客戶經理，請稍等。"]
    assert handoff == Handoff(
        language="yue", intent="request_human", skills={"general": 1}, priority=0,
        reason="customer_asked_for_advisor",
        transcript=[Turn(role="customer", text="我想搵真人傾", timestamp=1.0, intent="request_human")],
    )


def test_no_handoff_and_other_custom_payloads_are_ignored() -> None:
    texts, handoff = split_bot_messages([
        {"recipient_id": "s1", "text": "Hello"},
        {"recipient_id": "s1", "custom": {"card": "something else"}},
        {"recipient_id": "s1", "image": "https://example.invalid/x.png"},
    ])
    assert (texts, handoff) == (["Hello"], None)


def test_malformed_handoff_raises() -> None:
    with pytest.raises(pydantic.ValidationError):
        split_bot_messages([{"custom": {"handoff": {"language": "fr", "intent": "x"}}}])


def test_handoff_for_reads_the_config() -> None:
    urgent = handoff_for("report_lost_card", "yue")
    assert urgent.skills == {"cards": 1} and urgent.priority > 0
    general = handoff_for("something_unknown", "en", reason="bot_unavailable")
    assert (general.skills, general.priority, general.reason) == ({"general": 1}, 0, "bot_unavailable")
