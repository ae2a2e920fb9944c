"""Who could take a contact transferred to a skill and language: the transfer picker's list
and the transfer's own check, one pure function over the router's agents."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from routing.models import AgentState
from routing.policy import Policy
from routing.scoring import AgentView, derive_state, free_capacity, meets, takes_offers


@dataclass(frozen=True)
class Targets:
    """Advisors (agent ids) for a transfer: who could be offered it now, who is signed in with
    the language and skills but busy, away or in wrap-up (they could take it later)."""

    now: tuple[str, ...]
    later: tuple[str, ...]

    @property
    def anyone(self) -> bool:
        return bool(self.now or self.later)


def transfer_targets(
    policy: Policy,
    agents: Iterable[AgentView],
    *,
    channel: str,
    language: str,
    skills: Mapping[str, int],
    exclude: str | None,
) -> Targets:
    """Advisors other than ``exclude`` with ``language`` and ``skills`` (at their levels):
    available with a free slot on ``channel`` now, or signed in (not offline) for later."""
    now: list[str] = []
    later: list[str] = []
    for agent in sorted(agents, key=lambda a: a.id):
        if agent.id == exclude or language not in agent.languages or not meets(agent.skills, skills):
            continue
        if takes_offers(agent) and free_capacity(policy, agent, channel) > 0:
            now.append(agent.id)
        elif derive_state(agent) is not AgentState.OFFLINE:
            later.append(agent.id)
    return Targets(now=tuple(now), later=tuple(later))
