"""The bot's handoff to an advisor: the model the contact center routes with.

The action server (chatbot/rasa/actions/actions.py) signals a handoff in its REST-channel reply
as ``{"custom": {"handoff": {...}}}``; intent -> skills and priority come from handoff.yaml.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field

HANDOFF_CONFIG = Path(__file__).resolve().parent / "handoff.yaml"

Language = Literal["en", "zh", "yue"]


class Turn(BaseModel):
    """One line of the bot conversation, shown to the advisor."""

    role: Literal["customer", "bot"]
    text: str
    timestamp: float | None = None
    intent: str | None = None  # customer turns: what the bot understood


class Handoff(BaseModel):
    """The bot hands the customer to an advisor with these requirements."""

    language: Language
    intent: str
    skills: dict[str, int] = Field(min_length=1)  # skill -> minimum proficiency 1-5
    priority: int = Field(default=0, ge=0)
    reason: str
    transcript: list[Turn] = Field(default_factory=list)


def split_bot_messages(messages: Iterable[Mapping[str, Any]]) -> tuple[list[str], Handoff | None]:
    """Split REST-channel bot messages into the text replies and the handoff, if any.

    A malformed handoff payload raises pydantic.ValidationError (a ValueError): it is a bug in
    the action server, not something to hide from the customer's routing.
    """
    texts: list[str] = []
    handoff: Handoff | None = None
    for message in messages:
        text = message.get("text")
        if isinstance(text, str) and text:
            texts.append(text)
        custom = message.get("custom")
        if isinstance(custom, Mapping) and "handoff" in custom:
            handoff = Handoff.model_validate(custom["handoff"])
    return texts, handoff


def handoff_for(intent: str, language: Language, *, transcript: Sequence[Turn] = (),
                reason: str | None = None, config_path: Path = HANDOFF_CONFIG) -> Handoff:
    """A Handoff built from handoff.yaml without the bot, e.g. when the bot is unavailable."""
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    rule: dict[str, Any] = dict(config.get("default") or {})
    rule.update((config.get("intents") or {}).get(intent) or {})
    return Handoff(
        language=language,
        intent=intent,
        skills=dict(rule.get("skills") or {"general": 1}),
        priority=int(rule.get("priority", 0)),
        reason=reason or str(rule.get("reason", intent)),
        transcript=list(transcript),
    )
