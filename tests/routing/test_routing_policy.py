"""The policy file: defaults, validation with clear messages, derived rings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from routing.errors import PolicyError
from routing.models import Channel
from routing.policy import DEFAULT_POLICY_PATH, _lua_literal, load_policy, parse_policy


def test_default_policy_file_loads_with_the_documented_values() -> None:
    policy = load_policy(None)
    assert policy.languages == ["en", "zh", "yue"]
    assert policy.offer_timeout_s == 20
    assert policy.misses_before_away == 3
    assert policy.wrapup_s == 30
    assert policy.default_capacity == {Channel.TEXT: 3, Channel.VOICE: 1, Channel.VIDEO: 1}
    assert policy.exclusive_channels == [Channel.VOICE, Channel.VIDEO]
    assert [(r.lower_by, r.drop_optional) for r in policy.rings] == [
        (0, False),
        (2, False),
        (2, True),
    ]
    assert load_policy(DEFAULT_POLICY_PATH) == policy


def test_rings_are_cumulative() -> None:
    policy = parse_policy(
        {
            "languages": ["en"],
            "aging": [
                {"after_s": 10, "lower_proficiency_by": 1},
                {"after_s": 20, "lower_proficiency_by": 1, "drop_optional": True},
                {"after_s": 30, "lower_proficiency_by": 2},
            ],
        }
    )
    assert [(r.index, r.lower_by, r.drop_optional) for r in policy.rings] == [
        (0, 0, False),
        (1, 1, False),
        (2, 2, True),
        (3, 4, True),
    ]


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"languages": ["en"], "offer_timeout_s": 0}, "offer_timeout_s"),
        ({"languages": ["en"], "misses_before_away": 0}, "misses_before_away"),
        ({"languages": []}, "languages"),
        ({"languages": ["en"], "default_capacity": {"fax": 1}}, "default_capacity"),
        ({"languages": ["en"], "aging": [{"after_s": 30}, {"after_s": 10}]}, "after_s"),
        ({"languages": ["en"], "aging": [{"after_s": 30, "lower_by": 2}]}, "aging.0.lower_by"),
        ({"languages": ["en"], "wrapup": 5}, "wrapup"),
        ({"languages": ["en", "en"]}, "duplicates"),
    ],
)
def test_invalid_policy_names_the_field(data: dict[str, object], named: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(data, source="test.yaml")
    assert named in str(info.value)
    assert "test.yaml" in str(info.value)


def test_unreadable_or_malformed_files_raise_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("languages: [en\n", encoding="utf-8")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(bad)
    listing = tmp_path / "list.yaml"
    listing.write_text("- en\n", encoding="utf-8")
    with pytest.raises(PolicyError, match="mapping"):
        load_policy(listing)


def test_a_policy_file_overrides_defaults(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("languages: [en, yue]\noffer_timeout_s: 5\nwrapup_s: 0\n", encoding="utf-8")
    policy = load_policy(path)
    assert (policy.languages, policy.offer_timeout_s, policy.wrapup_s) == (["en", "yue"], 5, 0)
    assert policy.capacity_of({Channel.TEXT: 5}) == {
        Channel.TEXT: 5,
        Channel.VOICE: 1,
        Channel.VIDEO: 1,
    }


async def test_the_lua_table_compiled_into_the_scripts_reads_back_as_the_policy_data(
    redis_client: aioredis.Redis,
) -> None:
    policy = load_policy()
    source = f"local P = {policy.lua_table}\nreturn cjson.encode(P)"
    back = json.loads(await redis_client.eval(source, 0))
    assert back == json.loads(json.dumps(policy.lua_data()))


async def test_lua_literals_keep_strings_that_lua_would_have_to_quote(
    redis_client: aioredis.Redis,
) -> None:
    data = {"a-b": ['x"y\\z', "|é\n]]", 1.5, 3, True], "n": []}
    back = json.loads(await redis_client.eval(f"return cjson.encode({_lua_literal(data)})", 0))
    assert back == {"a-b": ['x"y\\z', "|é\n]]", 1.5, 3, True], "n": {}}
