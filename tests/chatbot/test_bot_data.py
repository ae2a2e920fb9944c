"""The Rasa project's data: intents, examples per language, catalogue, held-out set."""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Any

import pytest
import yaml

from chatbot._hanzi import SIMPLIFIED_ONLY, TRADITIONAL_ONLY
from chatbot.language import detect

CHATBOT = Path(__file__).resolve().parents[2] / "chatbot"
RASA = CHATBOT / "rasa"
INTENTS = {
    "greet", "goodbye", "ask_opening_hours", "ask_fx_rate", "ask_remittance", "report_lost_card",
    "ask_account_balance", "ask_loan", "ask_investment", "complaint", "request_human",
    "out_of_scope",
}
SKILLS = {"cards", "fx", "remittance", "loans", "investments", "complaints", "accounts", "general"}
NLU_FILES = {"en.yml": "en", "zh_hans.yml": "zh-Hans", "zh_hant.yml": "zh-Hant", "yue.yml": "yue"}


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def examples(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for block in load(path)["nlu"]:
        lines = [line.strip()[2:].strip() for line in block["examples"].splitlines()]
        out.setdefault(block["intent"], []).extend(line for line in lines if line)
    return out


def test_domain_declares_exactly_the_intents() -> None:
    assert set(load(RASA / "domain.yml")["intents"]) == INTENTS


@pytest.mark.parametrize("name", sorted(NLU_FILES))
def test_each_language_has_15_examples_per_intent(name: str) -> None:
    found = examples(RASA / "data" / "nlu" / name)
    assert set(found) == INTENTS
    assert {intent: n for intent, items in found.items() if (n := len(items)) < 15} == {}


def test_training_examples_are_written_in_their_file_script() -> None:
    hans = [e for items in examples(RASA / "data/nlu/zh_hans.yml").values() for e in items]
    hant = [e for items in examples(RASA / "data/nlu/zh_hant.yml").values() for e in items]
    yue = [e for items in examples(RASA / "data/nlu/yue.yml").values() for e in items]
    assert not [e for e in hans if set(e) & TRADITIONAL_ONLY]
    assert not [e for e in hant + yue if set(e) & SIMPLIFIED_ONLY]


@pytest.mark.parametrize("name", ["tests_heldout.yml", "tests_heldout_b.yml"])
def test_heldout_set_is_never_trained_on(name: str) -> None:
    heldout = load(CHATBOT / name)
    trained = {
        e.lower() for name in NLU_FILES for items in examples(RASA / "data/nlu" / name).values()
        for e in items
    }
    assert set(heldout) == {"en", "zh-Hans", "zh-Hant", "yue"}
    for language, intents in heldout.items():
        assert set(intents) == INTENTS, language
        for intent, items in intents.items():
            assert len(items) >= (5 if name == "tests_heldout.yml" else 4), (language, intent)
            assert not [e for e in items if e.lower() in trained], (language, intent)


def catalogue() -> dict[str, dict[str, str]]:
    return load(RASA / "actions" / "catalogue.yaml")


def test_catalogue_has_every_language_and_script() -> None:
    for key, variants in catalogue().items():
        assert set(variants) == {"en", "zh-Hans", "zh-Hant", "yue-Hant", "yue-Hans"}, key
        for tag, text in variants.items():
            chars = set(text)
            if tag.endswith("Hant"):
                assert not chars & SIMPLIFIED_ONLY, (key, tag)
            if tag.endswith("Hans"):
                assert not chars & TRADITIONAL_ONLY, (key, tag)


def test_catalogue_languages_are_detected_as_such() -> None:
    for key, variants in catalogue().items():
        for tag in ("zh-Hans", "zh-Hant", "yue-Hant"):
            text = re.sub(r"\{[^}]*\}", "", variants[tag])
            assert detect(text).tag == tag, (key, tag, text)


def test_catalogue_placeholders_come_from_the_data_file() -> None:
    data = load(RASA / "actions" / "bank_data.yaml")
    available = {
        "opening_hours": {**data["opening_hours"], **data["bank"]},
        "remittance": data["remittance"],
        "fx_header": {"as_of"},
        "fx_line": {"name", "code", "buy", "sell"},
    }
    for key, variants in catalogue().items():
        allowed = set(available.get(key, data["bank"]))
        for tag, text in variants.items():
            fields = {f for _, f, _, _ in string.Formatter().parse(text) if f}
            assert fields <= allowed, (key, tag, fields - allowed)


def test_every_handoff_intent_has_a_reply_and_known_skills() -> None:
    config = load(CHATBOT / "handoff.yaml")
    replies = catalogue()
    for intent, rule in config["intents"].items():
        assert f"handoff.{intent}" in replies
        assert set(rule["skills"]) <= SKILLS, intent
        assert all(1 <= level <= 5 for level in rule["skills"].values())
    for skills in config["topics"].values():
        assert set(skills) <= SKILLS
    assert config["intents"]["report_lost_card"]["priority"] > config["default"]["priority"]


def test_fx_table_has_as_of_time_names_and_aliases() -> None:
    fx = load(RASA / "actions" / "bank_data.yaml")["fx"]
    assert fx["as_of"]
    for code in fx["rates"]:
        assert code in fx["aliases"]
        for script in ("latin", "hans", "hant"):
            assert code in fx["names"][script]
