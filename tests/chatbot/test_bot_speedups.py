"""chatbot/rasa/speedups.py, inside the Rasa env: the same answers as Rasa's own code."""

from __future__ import annotations

import json
import subprocess
import textwrap
from typing import Any

import pytest

from chatbot import env

pytestmark = pytest.mark.rasa

#: Runs in the Rasa env: Rasa's answers first, then the same questions after install().
SCRIPT = textwrap.dedent("""
    import json
    from jsonschema import ValidationError
    from rasa.core.actions.action import RemoteAction
    from rasa.shared.core.events import Event
    from rasa.shared.utils.common import all_subclasses
    import speedups

    action = RemoteAction("action_x", None)
    answers = {
        "valid": {"events": [{"event": "slot", "timestamp": None, "name": "topic", "value": "x"}],
                  "responses": [{"text": "hello"}]},
        "empty": {},
        "bad_event": {"events": [{"event": 3}], "responses": []},
        "bad_responses": {"events": [], "responses": "hello"},
        "not_an_object": ["events"],
    }
    names = sorted({cls.type_name for cls in all_subclasses(Event)})

    def ask():
        out = {"validate": {}, "resolve": {}}
        for key, answer in answers.items():
            try:
                out["validate"][key] = action._validate_action_result(answer)
            except ValidationError as exc:
                out["validate"][key] = ["ValidationError", exc.message, list(exc.path)]
        for name in names:
            out["resolve"][name] = Event.resolve_by_type(name).__name__
        out["resolve_twice"] = [Event.resolve_by_type(n).__name__ for n in names]
        out["unknown_default"] = Event.resolve_by_type("no_such_event", Event).__name__
        out["topic"] = repr(Event.resolve_by_type("topic"))
        try:
            Event.resolve_by_type("no_such_event")
        except ValueError as exc:
            out["unknown"] = str(exc)
        return out

    rasa = ask()
    speedups.install()
    speedups.install()
    print(json.dumps({"rasa": rasa, "speedups": ask(), "names": len(names)}))
""")


@pytest.fixture(scope="module")
def answers(rasa_paths: env.RasaPaths) -> dict[str, Any]:
    assert rasa_paths.env_dir is not None
    result = subprocess.run(
        [str(rasa_paths.env_dir / "bin" / "python"), "-c", SCRIPT],
        cwd=env.RASA_DIR, env=env.rasa_environ(), capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(json.loads(result.stdout.splitlines()[-1]))


def test_action_answers_are_validated_as_rasa_does(answers: dict[str, Any]) -> None:
    ours, rasa = answers["speedups"]["validate"], answers["rasa"]["validate"]
    assert ours == rasa
    assert ours["valid"] is True and ours["empty"] is True
    for key in ("bad_event", "bad_responses", "not_an_object"):
        kind, message, _ = ours[key]
        assert kind == "ValidationError" and "Failed to validate Action server response" in message


def test_events_resolve_to_the_classes_rasa_finds(answers: dict[str, Any]) -> None:
    ours, rasa = answers["speedups"], answers["rasa"]
    assert answers["names"] > 20  # user, bot, slot, action, ...
    assert ours["resolve"] == rasa["resolve"]
    assert ours["resolve_twice"] == list(rasa["resolve"].values())
    assert ours["resolve"]["user"] == "UserUttered" and ours["resolve"]["slot"] == "SlotSet"
    for key in ("unknown_default", "topic", "unknown"):
        assert ours[key] == rasa[key]
    assert ours["unknown_default"] == "Event" and ours["topic"] == "None"
    assert "no_such_event" in ours["unknown"]
