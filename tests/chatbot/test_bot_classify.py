"""chatbot.classify: lines in, one JSON object per line out."""

from __future__ import annotations

import io
import json

import pytest

from chatbot import classify
from chatbot.services import RasaServices

pytestmark = pytest.mark.rasa


def test_classifies_lines_from_stdin(rasa_services: RasaServices, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("I lost my card\n\n你哋幾點開門\n美元汇率是多少\n"))
    assert classify.main(["--rasa-url", rasa_services.url]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["text"], r["language"], r["intent"]) for r in rows] == [
        ("I lost my card", "en", "report_lost_card"),
        ("你哋幾點開門", "yue", "ask_opening_hours"),
        ("美元汇率是多少", "zh", "ask_fx_rate"),
    ]
    assert all(set(r) == {"text", "language", "intent", "confidence"} for r in rows)
