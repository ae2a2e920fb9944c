"""CC_VOICE_MODELS and CC_VOICE_ENABLED."""

from __future__ import annotations

from pathlib import Path

import pytest

from contact_center.config import SettingsError, load_settings


def test_voice_models_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CC_VOICE_MODELS", "en=/models/en, zh=/models/zh")
    monkeypatch.setenv("CC_VOICE_ENABLED", "false")
    settings = load_settings(var_dir=tmp_path)
    assert settings.voice_models == {"en": Path("/models/en"), "zh": Path("/models/zh")}
    assert settings.voice_enabled is False


def test_a_bad_voice_models_value_names_the_setting(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    monkeypatch.setenv("CC_VOICE_MODELS", "en")
    with pytest.raises(SettingsError, match="CC_VOICE_MODELS: .en. is not language=path"):
        load_settings(var_dir=tmp_path)


def test_the_fixed_replies_are_the_catalogue_lines_without_placeholders() -> None:
    from contact_center.bot.gateway import fixed_replies, greeting

    for language in ("en", "zh", "yue"):
        replies = fixed_replies(language)
        assert greeting(language) in replies
        assert replies and not any("{" in text for text in replies)
    assert "Sorry, I didn't quite understand." in " ".join(fixed_replies("en"))


def test_voice_engines_from_the_environment(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    assert load_settings(var_dir=tmp_path).voice_engines == {}
    monkeypatch.setenv("CC_VOICE_ENGINES", "en=sphinx,zh=none")
    assert load_settings(var_dir=tmp_path).voice_engines == {"en": "sphinx", "zh": "none"}
    monkeypatch.setenv("CC_VOICE_ENGINES", "en=whisper")
    with pytest.raises(SettingsError, match="CC_VOICE_ENGINES: .*one of vosk, sphinx, none"):
        load_settings(var_dir=tmp_path)
