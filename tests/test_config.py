"""Settings: every bad value stops the command with exit code 2 and names the setting."""

from __future__ import annotations

import pytest

from contact_center.config import DEFAULT_SECRET, SettingsError, load_settings
from tests.helpers import cli_env, run_cli

BAD_VALUES = [
    ("CC_PORT", "70000"),
    ("CC_PORT", "http"),
    ("CC_MODE", "staging"),
    ("CC_DATABASE_URL", "mysql://root@localhost/cc"),
    ("CC_REDIS_URL", "localhost:6379"),
    ("CC_REDIS_CLUSTER", "10.0.0.5"),
    ("CC_REDIS_CLUSTER", "10.0.0.5:7000,10.0.0.6:http"),
    ("CC_RASA_URL", "127.0.0.1:5005"),
    ("CC_PUBLIC_BASE_URL", "example.com"),
    ("CC_ICE_SERVERS", "http://stun.example.com"),
    ("CC_ICE_HOST_ADDRESSES", "127.0.0.300"),
    ("CC_MAX_BODY_BYTES", "12"),
    ("CC_LOG_LEVEL", "LOUD"),
    ("CC_LOGIN_MAX_FAILURES", "0"),
    ("CC_REDIS_SENTINELS", "10.0.0.5"),
    ("CC_REDIS_SENTINELS", "10.0.0.5:26379,10.0.0.6:port"),
    ("CC_REDIS_SENTINELS", "10.0.0.5:0"),
]


@pytest.mark.parametrize(("name", "value"), BAD_VALUES)
def test_invalid_setting_exits_2_naming_it(tmp_path, name, value):
    result = run_cli("db", "current", env=cli_env(CC_VAR_DIR=str(tmp_path), **{name: value}))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"invalid setting {name}:" in lines[0]


@pytest.mark.parametrize("secret", [None, DEFAULT_SECRET, "short"])
def test_production_refuses_a_missing_default_or_weak_secret(tmp_path, secret):
    env = cli_env(CC_VAR_DIR=str(tmp_path), CC_MODE="production")
    if secret is not None:
        env["CC_SECRET_KEY"] = secret
    result = run_cli("db", "current", env=env)
    assert result.returncode == 2
    assert "invalid setting CC_SECRET_KEY:" in result.stderr


def test_production_accepts_a_strong_secret_and_development_needs_none(tmp_path):
    strong = load_settings(var_dir=tmp_path, mode="production", secret_key="s" * 48)
    assert strong.secret() == "s" * 48
    dev = load_settings(var_dir=tmp_path)
    assert dev.secret() == dev.secret()  # kept under var_dir, so sessions survive a restart
    assert (tmp_path / "dev-secret").stat().st_mode & 0o077 == 0


def test_defaults_live_under_the_data_directory(tmp_path):
    settings = load_settings(var_dir=tmp_path / "data")
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'data' / 'contact_center.db'}"
    assert settings.recordings_dir == tmp_path / "data" / "recordings"
    assert settings.redis_url is None and settings.embedded_redis
    assert settings.public_base_url == "http://127.0.0.1:8080"


def test_lists_are_comma_separated(tmp_path, monkeypatch):
    monkeypatch.setenv("CC_ICE_SERVERS", "stun:stun.example.com:3478, turn:turn.example.com")
    monkeypatch.setenv("CC_ICE_HOST_ADDRESSES", "127.0.0.1")
    settings = load_settings(var_dir=tmp_path)
    assert settings.ice_servers == ["stun:stun.example.com:3478", "turn:turn.example.com"]
    assert settings.ice_host_addresses == ["127.0.0.1"]


def test_sentinels_are_host_port_pairs_and_exclude_a_redis_url(tmp_path, monkeypatch):
    monkeypatch.setenv("CC_REDIS_SENTINELS", "10.0.0.5:26379, [fd00::7]:26380")
    settings = load_settings(var_dir=tmp_path)
    assert settings.redis_sentinels == [("10.0.0.5", 26379), ("fd00::7", 26380)]
    assert not settings.embedded_redis and settings.redis_sentinel_service == "mymaster"
    with pytest.raises(SettingsError, match="CC_REDIS_URL and CC_REDIS_SENTINELS"):
        load_settings(var_dir=tmp_path, redis_url="redis://127.0.0.1:6379/0")


def test_cluster_nodes_are_host_port_pairs_and_exclude_the_other_ways(tmp_path, monkeypatch):
    monkeypatch.setenv("CC_REDIS_CLUSTER", "10.0.0.5:7000,10.0.0.6:7001")
    settings = load_settings(var_dir=tmp_path)
    assert settings.redis_cluster == [("10.0.0.5", 7000), ("10.0.0.6", 7001)]
    assert not settings.embedded_redis
    with pytest.raises(SettingsError, match="CC_REDIS_URL and CC_REDIS_CLUSTER"):
        load_settings(var_dir=tmp_path, redis_url="redis://127.0.0.1:6379/0")
    with pytest.raises(SettingsError, match="CC_REDIS_SENTINELS and CC_REDIS_CLUSTER"):
        load_settings(var_dir=tmp_path, redis_sentinels="10.0.0.7:26379")


def test_error_type():
    with pytest.raises(SettingsError, match="CC_PORT"):
        load_settings(port=0)
