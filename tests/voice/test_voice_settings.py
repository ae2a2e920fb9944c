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
