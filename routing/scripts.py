"""Loads the Lua scripts (package data) with the shared helpers prepended."""

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


@cache
def script_source(name: str) -> str:
    """Full source of a router script: common.lua followed by the script's own body."""
    if name not in SCRIPT_NAMES:
        raise KeyError(name)
    return _read("common") + "\n" + _read(name)
