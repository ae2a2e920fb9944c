"""chatbot.env: cache locations and keys, without building anything."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chatbot import env


def test_cache_dir_follows_env_vars(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CC_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert env.cache_dir() == tmp_path / "xdg" / "contact-center"
    monkeypatch.setenv("CC_CACHE_DIR", str(tmp_path / "cc"))
    assert env.cache_dir() == tmp_path / "cc"


def test_paths_command_prints_json_without_building(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "chatbot.env", "paths"], capture_output=True, text=True, check=True,
        env={**env.rasa_environ(), "CC_CACHE_DIR": str(tmp_path)}, timeout=60,
    ).stdout
    paths = json.loads(out)
    assert paths["cache_dir"] == str(tmp_path)
    assert paths["model_path"].startswith(str(tmp_path))
    assert paths["model_ready"] is False and paths["env_ready"] is False
    assert list(tmp_path.iterdir()) == []  # nothing built


def test_model_key_changes_with_training_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    copy = tmp_path / "rasa"
    shutil.copytree(env.RASA_DIR, copy, ignore=shutil.ignore_patterns("models", ".rasa", "__pycache__"))
    monkeypatch.setattr(env, "RASA_DIR", copy)
    before = env.model_key()
    (copy / "actions" / "bank_data.yaml").write_text("# actions are not training data\n")
    assert env.model_key() == before
    nlu = copy / "data" / "nlu" / "en.yml"
    nlu.write_text(nlu.read_text() + "      - hello again\n")
    assert env.model_key() != before


def test_env_key_depends_on_python_version() -> None:
    assert env.env_key("3.10.13") != env.env_key("3.9.18")


def test_missing_python_gives_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(env, "find_python", lambda: None)
    with pytest.raises(env.EnvError, match="Python 3.8, 3.9 or 3.10"):
        env.ensure_env()


def test_an_unfinished_build_is_not_taken_as_done(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    monkeypatch.setenv("CC_CACHE_DIR", str(tmp_path))
    paths = env.paths()
    if paths.env_dir is None:
        pytest.skip("no Python 3.8-3.10 here")
    # what an interrupted build leaves: a temporary directory, never the final name
    (paths.env_dir.with_name(paths.env_dir.name + ".building-1234") / "bin").mkdir(parents=True)
    assert not env.paths().env_ready
