"""The routing policy: a validated config file plus the pure derivations used by the scripts."""

from __future__ import annotations

import math
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from routing.errors import PolicyError
from routing.models import CHANNELS, Channel

DEFAULT_POLICY_PATH = Path(__file__).with_name("default_policy.yaml")

#: Priority scale when aging is off: far more seconds than any wait, so priority always wins.
NO_AGING_SCALE = 1e10


class AgingStep(BaseModel):
    """One bullseye ring: from ``after_s`` of waiting, relax on top of the previous rings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    after_s: Annotated[float, Field(gt=0)]
    lower_proficiency_by: Annotated[int, Field(ge=0, le=4)] = 0
    drop_optional: bool = False


class Ring(BaseModel):
    """The relaxation in force: ring 0 is the original requirement (optional skills required)."""

    model_config = ConfigDict(frozen=True)

    index: int
    lower_by: int
    drop_optional: bool


class Policy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    languages: Annotated[list[Annotated[str, Field(pattern=r"^[a-z]{2,8}$")]], Field(min_length=1)]
    offer_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 20
    misses_before_away: Annotated[int, Field(ge=1, le=100)] = 3
    wrapup_s: Annotated[float, Field(ge=0, le=3600)] = 30
    service_level_s: Annotated[float, Field(gt=0)] = 20
    vip_boost: Annotated[int, Field(ge=0, le=1000)] = 5
    priority_boost_per_minute: Annotated[float, Field(ge=0, le=1000)] = 1.0
    recheck_s: Annotated[float, Field(gt=0, le=3600)] = 15
    candidate_window: Annotated[int, Field(ge=1, le=10000)] = 20
    max_candidate_window: Annotated[int, Field(ge=1, le=100000)] = 2560
    queue_window: Annotated[int, Field(ge=1, le=10000)] = 50
    exclusive_channels: list[Channel] = Field(
        default_factory=lambda: [Channel.VOICE, Channel.VIDEO]
    )
    default_capacity: dict[Channel, Annotated[int, Field(ge=0, le=50)]] = Field(
        default_factory=lambda: {Channel.TEXT: 3, Channel.VOICE: 1, Channel.VIDEO: 1}
    )
    aging: list[AgingStep] = Field(default_factory=list)
    aht_default_s: Annotated[float, Field(gt=0)] = 180
    aht_samples: Annotated[int, Field(ge=1, le=10000)] = 50
    events_maxlen: Annotated[int, Field(ge=1000)] = 200000
    retain_done_s: Annotated[float, Field(ge=0)] = 86400
    exclusion_s: Annotated[float, Field(gt=0, le=86400)] = 30
    """A rejection or expiry keeps that agent from the contact this long, not for good."""
    late_expiry_s: Annotated[float, Field(gt=0, le=3600)] = 5
    """An offer handled this long after its deadline expired while nobody could act (Redis or
    every instance down): it is released without counting as the agent's miss."""

    @model_validator(mode="after")
    def _check(self) -> Policy:
        if len(set(self.languages)) != len(self.languages):
            raise ValueError("languages: duplicates are not allowed")
        afters = [step.after_s for step in self.aging]
        if afters != sorted(set(afters)):
            raise ValueError("aging: after_s must be strictly increasing")
        return self

    @cached_property
    def rings(self) -> list[Ring]:
        """Ring 0 plus one cumulative ring per aging step."""
        rings = [Ring(index=0, lower_by=0, drop_optional=False)]
        for i, step in enumerate(self.aging, start=1):
            prev = rings[-1]
            rings.append(
                Ring(
                    index=i,
                    lower_by=prev.lower_by + step.lower_proficiency_by,
                    drop_optional=prev.drop_optional or step.drop_optional,
                )
            )
        return rings

    def capacity_of(self, capacity: dict[Channel, int] | None) -> dict[Channel, int]:
        """An agent's capacity: its own per channel, the policy default elsewhere."""
        merged = dict(self.default_capacity)
        for ch in CHANNELS:
            merged.setdefault(ch, 0)
        if capacity:
            merged.update(capacity)
        return merged

    @property
    def priority_scale_s(self) -> float:
        """Seconds of waiting worth one priority level (aging boost is linear in waiting time)."""
        b = self.priority_boost_per_minute
        return 60.0 / b if b > 0 else NO_AGING_SCALE

    def lua_data(self) -> dict[str, Any]:
        """The subset the Lua scripts read, under the names they use."""
        return {
            "langs": self.languages,
            "timeout": self.offer_timeout_s,
            "misses": self.misses_before_away,
            "wrapup": self.wrapup_s,
            "sl": self.service_level_s,
            "recheck": self.recheck_s,
            "wa": self.candidate_window,
            "wmax": max(self.candidate_window, self.max_candidate_window),
            "wc": self.queue_window,
            "excl": [str(c) for c in self.exclusive_channels],
            "rings": [
                {"after": s.after_s, "lower": r.lower_by, "drop": r.drop_optional}
                for s, r in zip(self.aging, self.rings[1:], strict=True)
            ],
            "aht_n": self.aht_samples,
            "maxlen": self.events_maxlen,
            "retain": self.retain_done_s,
            "exclttl": self.exclusion_s,
            "late": self.late_expiry_s,
        }

    @cached_property
    def lua_table(self) -> str:
        """:meth:`lua_data` as a Lua table constructor, compiled into every script (``P``)."""
        return _lua_literal(self.lua_data())


def _lua_literal(value: Any) -> str:
    """A Lua constructor of plain data (dict, list, str, int, float, bool)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PolicyError(f"a policy number must be finite, not {value}")
        return repr(value)
    if isinstance(value, str):
        # decimal escapes for anything but letters, digits and _: no quoting to get wrong
        return (
            '"'
            + "".join(
                c
                if c.isascii() and (c.isalnum() or c == "_")
                else "".join(f"\\{b:03d}" for b in c.encode())
                for c in value
            )
            + '"'
        )
    if isinstance(value, dict):
        return (
            "{"
            + ", ".join(f"[{_lua_literal(str(k))}] = {_lua_literal(v)}" for k, v in value.items())
            + "}"
        )
    if isinstance(value, list | tuple):
        return "{" + ", ".join(_lua_literal(v) for v in value) + "}"
    raise TypeError(f"no Lua literal for {type(value).__name__}")


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def parse_policy(data: Any, *, source: str = "policy") -> Policy:
    """Validate already-loaded policy data."""
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: expected a mapping at the top level")
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(f"{source}: invalid routing policy: {_describe(exc)}") from exc


def load_policy(path: Path | None = None) -> Policy:
    """Read and validate a policy YAML file (``routing/default_policy.yaml`` when None)."""
    path = path or DEFAULT_POLICY_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read routing policy: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{path}: not valid YAML: {exc}") from exc
    return parse_policy(data, source=str(path))
