"""Loads the Lua scripts (package data) with the policy and the shared helpers prepended."""

from __future__ import annotations

from functools import cache
from importlib import resources

SCRIPT_NAMES = (
    "upsert_agent",
    "set_state",
    "enqueue",
    "accept",
    "reject",
    "complete",
    "cancel",
    "transfer",
    "requeue_front",
    "change_channel",
    "wrapup_done",
    "process_due",
    "position",
)


def _read(name: str) -> str:
    return resources.files("routing").joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


def assemble(policy_table: str, common: str, body: str) -> str:
    """A router script's source: the policy as the Lua table ``P``, common.lua, the body."""
    return f"local P = {policy_table}\n{common}\n{body}"


@cache
def script_source(name: str, policy_table: str) -> str:
    """Full source of a router script for a policy (``Policy.lua_table``): compiled in, so
    that no call decodes the policy; one script (one SHA) per policy."""
    if name not in SCRIPT_NAMES:
        raise KeyError(name)
    return assemble(policy_table, _read("common"), _read(name))
