"""The advisor desktop's settings: wrap-up outcome codes and the canned replies file."""

from __future__ import annotations

from pathlib import Path

import pytest

from contact_center.canned_replies import CannedRepliesError, load_canned_replies
from contact_center.config import DEFAULT_WRAPUP_OUTCOMES, SettingsError, load_settings


def test_outcomes_default_and_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    assert load_settings(var_dir=tmp_path).wrapup_outcomes == list(DEFAULT_WRAPUP_OUTCOMES)
    monkeypatch.setenv("CC_WRAPUP_OUTCOMES", "resolved, sold_card ,no_action")
    assert load_settings(var_dir=tmp_path).wrapup_outcomes == ["resolved", "sold_card", "no_action"]


@pytest.mark.parametrize(
    ("value", "said"),
    [("", "at least one"), ("Resolved", "is not a code"), ("ok,ok", "listed twice")],
)
def test_bad_outcomes_are_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str, said: str
):
    monkeypatch.setenv("CC_WRAPUP_OUTCOMES", value)
    with pytest.raises(SettingsError, match="CC_WRAPUP_OUTCOMES") as refused:
        load_settings(var_dir=tmp_path)
    assert said in str(refused.value)


def test_the_built_in_canned_replies_cover_every_language():
    replies = load_canned_replies()
    assert set(replies) == {"en", "zh", "yue"}
    assert all(len(r) >= 3 for r in replies.values())


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("fr:\n  - {title: Bonjour, text: Bonjour}\n", "unknown language 'fr'"),
        ("en:\n  - {title: Hi}\n", "en.0.text"),
        ("en: [unclosed\n", "canned"),
    ],
)
def test_a_bad_canned_replies_file_is_refused(tmp_path: Path, text: str, said: str):
    path = tmp_path / "canned.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CannedRepliesError) as refused:
        load_canned_replies(path)
    assert said in str(refused.value)
