"""Custom actions: every reply in the customer's language and script, facts from data files.

Runs in the Rasa 3.10 environment (rasa-sdk). It imports chatbot.language from the repository
(chatbot.services puts the repository root on PYTHONPATH), so language detection is the same
code the 3.11 app uses.
"""

from __future__ import annotations

import abc
import logging
import os
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import yaml
from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from chatbot.language import detect

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
BANK_DATA = Path(os.environ.get("CC_BOT_BANK_DATA", HERE / "bank_data.yaml"))
CATALOGUE = Path(os.environ.get("CC_BOT_CATALOGUE", HERE / "catalogue.yaml"))
HANDOFF_CONFIG = Path(os.environ.get("CC_BOT_HANDOFF_CONFIG", HERE.parent.parent / "handoff.yaml"))

_cache: Dict[Path, Tuple[float, Any]] = {}


def load(path: Path) -> Any:
    """Parse a YAML file, re-reading it when it changed on disk (operations edit rates)."""
    mtime = path.stat().st_mtime
    cached = _cache.get(path)
    if cached is None or cached[0] != mtime:
        with path.open(encoding="utf-8") as fh:
            cached = (mtime, yaml.safe_load(fh))
        _cache[path] = cached
    return cached[1]


def _last_user_event(tracker: Tracker) -> Dict[str, Any]:
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            return event
    return {}


def conversation_language(tracker: Tracker) -> Tuple[str, str, str]:
    """(language, script, tag) of the latest message, falling back on the conversation so far
    and on a language the channel sent in metadata when the message itself cannot tell."""
    event = _last_user_event(tracker)
    metadata = event.get("metadata") or {}
    prior = tracker.get_slot("language") or metadata.get("language")
    prior_script = tracker.get_slot("script") or metadata.get("script")
    found = detect(tracker.latest_message.get("text") or "", prior=prior, prior_script=prior_script)
    return found.language, found.script, found.tag


def say(tag: str, key: str, **values: Any) -> str:
    """The catalogue entry for key in the tag's language and script, filled with values."""
    entry = load(CATALOGUE)[key]
    template = entry.get(tag) or entry["en"]
    return template.format(**values)


class BankAction(Action, metaclass=abc.ABCMeta):
    """Detects the language, replies, and keeps the language slots up to date."""

    # abstract, so that rasa-sdk does not register this base class as an action
    @abc.abstractmethod
    def reply(self, dispatcher: CollectingDispatcher, tracker: Tracker, language: str,
              script: str, tag: str) -> List[EventType]:
        """Utter the answer; return events besides the language slots."""

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[str, Any]) -> List[EventType]:
        language, script, tag = conversation_language(tracker)
        events: List[EventType] = [SlotSet("language", language), SlotSet("script", script)]
        return events + self.reply(dispatcher, tracker, language, script, tag)


class ActionAnswer(BankAction):
    """Greet and goodbye: a catalogue entry named after the intent."""

    def name(self) -> str:
        return "action_answer"

    def reply(self, dispatcher, tracker, language, script, tag):
        intent = tracker.get_intent_of_latest_message() or "greet"
        dispatcher.utter_message(text=say(tag, intent))
        return [SlotSet("fallback_count", 0)]


class ActionOpeningHours(BankAction):
    def name(self) -> str:
        return "action_opening_hours"

    def reply(self, dispatcher, tracker, language, script, tag):
        data = load(BANK_DATA)
        dispatcher.utter_message(text=say(tag, "opening_hours", **data["opening_hours"], **data["bank"]))
        return [SlotSet("fallback_count", 0), SlotSet("topic", "ask_opening_hours")]


def currencies_in(text: str, aliases: Dict[str, List[str]]) -> List[str]:
    """Currency codes the text mentions, in table order."""
    lowered = text.lower()
    found = []
    for code, names in aliases.items():
        for name in names:
            name = str(name).lower()
            if name.isascii():
                hit = re.search(rf"(?<![a-z]){re.escape(name)}(?![a-z])", lowered) is not None
            else:
                hit = name in lowered
            if hit:
                found.append(code)
                break
    return found


class ActionFxRate(BankAction):
    def name(self) -> str:
        return "action_fx_rate"

    def reply(self, dispatcher, tracker, language, script, tag):
        fx = load(BANK_DATA)["fx"]
        codes = currencies_in(tracker.latest_message.get("text") or "", fx["aliases"])
        codes = [c for c in codes if c in fx["rates"]] or list(fx["rates"])
        lines = [say(tag, "fx_header", as_of=fx["as_of"])]
        names = fx["names"][script]
        for code in codes:
            rate = fx["rates"][code]
            lines.append(say(tag, "fx_line", name=names.get(code, code), code=code,
                             buy=rate["buy"], sell=rate["sell"]))
        dispatcher.utter_message(text="\n".join(lines))
        return [SlotSet("fallback_count", 0), SlotSet("topic", "ask_fx_rate")]


class ActionRemittance(BankAction):
    def name(self) -> str:
        return "action_remittance"

    def reply(self, dispatcher, tracker, language, script, tag):
        dispatcher.utter_message(text=say(tag, "remittance", **load(BANK_DATA)["remittance"]))
        return [SlotSet("fallback_count", 0), SlotSet("topic", "ask_remittance")]


def transcript(tracker: Tracker) -> List[Dict[str, Any]]:
    """The conversation so far, customer and bot turns, for the advisor."""
    turns: List[Dict[str, Any]] = []
    for event in tracker.events:
        kind = event.get("event")
        if kind == "user" and event.get("text"):
            intent = (event.get("parse_data") or {}).get("intent") or {}
            turns.append({"role": "customer", "text": event["text"],
                          "timestamp": event.get("timestamp"), "intent": intent.get("name")})
        elif kind == "bot" and event.get("text"):
            turns.append({"role": "bot", "text": event["text"], "timestamp": event.get("timestamp")})
    return turns


def handoff(dispatcher: CollectingDispatcher, tracker: Tracker, *, intent: str, language: str,
            tag: str) -> List[EventType]:
    """Tell the customer, then signal the handoff to the channel as a custom payload."""
    config = load(HANDOFF_CONFIG)
    rule = dict(config.get("default") or {})
    rule.update((config.get("intents") or {}).get(intent) or {})
    skills = dict(rule.get("skills") or {"general": 1})
    topic: Optional[str] = tracker.get_slot("topic")
    if intent in ("request_human", "nlu_fallback") and topic in (config.get("topics") or {}):
        skills = dict(config["topics"][topic])
    bank = load(BANK_DATA)["bank"]
    text = say(tag, f"handoff.{intent}", **bank)
    turns = transcript(tracker)
    dispatcher.utter_message(text=text)
    dispatcher.utter_message(json_message={"handoff": {
        "language": language,
        "intent": intent,
        "skills": skills,
        "priority": int(rule.get("priority", 0)),
        "reason": str(rule.get("reason", intent)),
        "transcript": turns,
    }})
    return [SlotSet("fallback_count", 0)]


class ActionHandoff(BankAction):
    def name(self) -> str:
        return "action_handoff"

    def reply(self, dispatcher, tracker, language, script, tag):
        intent = tracker.get_intent_of_latest_message() or "request_human"
        return handoff(dispatcher, tracker, intent=intent, language=language, tag=tag)


class ActionFallback(BankAction):
    """Not understood: apologise; after N in a row hand off (handoff.yaml)."""

    def name(self) -> str:
        return "action_fallback"

    def reply(self, dispatcher, tracker, language, script, tag):
        count = int(tracker.get_slot("fallback_count") or 0) + 1
        limit = int(load(HANDOFF_CONFIG).get("fallbacks_before_handoff", 2))
        if count >= limit:
            return handoff(dispatcher, tracker, intent="nlu_fallback", language=language, tag=tag)
        dispatcher.utter_message(text=say(tag, "fallback"))
        return [SlotSet("fallback_count", count)]
