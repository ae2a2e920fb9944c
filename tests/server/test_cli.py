"""The command line: users, demo and migrations on a fresh data directory."""

from __future__ import annotations

import pytest

from tests.helpers import cli_env, run_cli


@pytest.fixture
def env(tmp_path):
    env = cli_env(CC_VAR_DIR=str(tmp_path / "var"), CC_LOG_JSON="false")
    return env


def test_commands_refuse_an_unmigrated_database_and_say_how_to_migrate(env):
    result = run_cli("demo", env=env)
    assert result.returncode == 1
    assert "run `contact-center db upgrade`" in result.stderr


def test_users_create_with_languages_skills_and_capacity(env):
    assert run_cli("db", "upgrade", env=env).returncode == 0
    result = run_cli(
        "users", "create", "wong", "--role", "advisor", "--languages", "yue,en",
        "--skills", "cards:4,fx:3", "--capacity", "text:2", "--password-stdin",
        env=env, input="a long enough password\n",
    )
    assert result.returncode == 0, result.stderr
    assert "created advisor wong" in result.stdout
    again = run_cli("users", "create", "wong", "--role", "advisor", "--password", "x" * 12, env=env)
    assert again.returncode == 1 and "already exists" in again.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--languages", "fr"], "unknown language 'fr'"),
        (["--skills", "cards:9"], "proficiency must be 1 to 5"),
        (["--skills", "cards"], "must look like name:number"),
        (["--capacity", "fax:1"], "unknown channel 'fax'"),
    ],
)
def test_users_create_rejects_bad_input_with_exit_2(env, args, message):
    assert run_cli("db", "upgrade", env=env).returncode == 0
    result = run_cli("users", "create", "x1", "--role", "advisor", "--password", "p" * 12, *args, env=env)
    assert result.returncode == 2
    assert message in result.stderr


def test_demo_creates_the_documented_cast_once(env):
    assert run_cli("db", "upgrade", env=env).returncode == 0
    first = run_cli("demo", "--if-empty", env=env)
    assert first.returncode == 0
    lines = first.stdout.splitlines()
    advisors = [line.split() for line in lines if line.strip().startswith("advisor")]
    assert len(advisors) >= 4
    languages = {row[1]: row[2] for row in advisors}
    assert "yue" in languages.values() and "zh" in languages.values()  # Cantonese-only, Mandarin-only
    assert sum(1 for line in lines if line.strip().startswith("customer")) == 2
    assert sum(1 for line in lines if "VIP" in line) == 1
    assert any(line.strip().startswith("supervisor") for line in lines)
    assert any(line.strip().startswith("compliance") for line in lines)
    second = run_cli("demo", "--if-empty", env=env)
    assert "nothing to create" in second.stdout
