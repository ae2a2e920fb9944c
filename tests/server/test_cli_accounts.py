"""``users disable``, ``enable`` and ``set-password``: the account changes and its sessions end."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from contact_center import redis_keys
from tests.helpers import cli_env, run_cli


@pytest.fixture
def env(tmp_path, redis_url):
    env = cli_env(CC_VAR_DIR=str(tmp_path / "var"), CC_LOG_JSON="false", CC_REDIS_URL=redis_url)
    assert run_cli("db", "upgrade", env=env).returncode == 0
    created = run_cli(
        "users", "create", "carol", "--role", "compliance", "--password-stdin",
        env=env, input="first passphrase\n",
    )
    assert created.returncode == 0, created.stderr
    return env


def _sessions_of(redis_url: str, user_id: int, count: int) -> list[str]:
    async def plant() -> list[str]:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            sids = [f"sid-{user_id}-{i}" for i in range(count)]
            for sid in sids:
                await client.hset(redis_keys.session(sid), mapping={"uid": user_id, "created": 0})
                await client.sadd(redis_keys.user_sessions(user_id), sid)
            return sids
        finally:
            await client.aclose()

    return asyncio.run(plant())


def _exists(redis_url: str, keys: list[str]) -> int:
    async def count() -> int:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            return int(await client.exists(*keys))
        finally:
            await client.aclose()

    return asyncio.run(count())


def test_disable_ends_the_sessions_and_enable_brings_the_account_back(env, redis_url):
    sids = _sessions_of(redis_url, 1, 2)
    result = run_cli("users", "disable", "carol", env=env)
    assert result.returncode == 0, result.stderr
    assert "sessions ended: 2" in result.stdout  # users disable is the admin CLI's (users_cli)
    assert _exists(redis_url, [redis_keys.session(s) for s in sids]) == 0
    assert "enabled carol" in run_cli("users", "enable", "carol", env=env).stdout


def test_set_password_checks_the_rules_and_ends_the_sessions(env, redis_url):
    short = run_cli("users", "set-password", "carol", "--password-stdin", env=env, input="short\n")
    assert short.returncode == 2 and "password" in short.stderr
    sids = _sessions_of(redis_url, 1, 1)
    done = run_cli(
        "users", "set-password", "carol", "--password-stdin", env=env, input="second passphrase\n"
    )
    assert done.returncode == 0, done.stderr
    assert "1 session(s) ended" in done.stdout
    assert _exists(redis_url, [redis_keys.session(s) for s in sids]) == 0


def test_an_unknown_user_is_an_error(env):
    result = run_cli("users", "disable", "nobody", env=env)
    assert result.returncode == 1 and "no user named 'nobody'" in result.stderr
