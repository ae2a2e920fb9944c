"""Pure routing rules over plain data: rings, eligibility, ranking, queue order, EWT, snapshot.

The Lua scripts (routing/lua/) apply exactly these rules atomically inside Redis; the tests
drive a pure reference model built on this module and the Redis store side by side.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from routing.models import CHANNELS, AgentState, ContactState, Explanation, ScoreParts
from routing.policy import Policy, Ring

#: Skill label of contacts that require no skill (snapshot and service-level grouping).
GENERAL = "general"
#: Number of runner-up agents kept in an explanation.
EXPLAIN_TOP = 5


@dataclass
class AgentView:
    """An agent as the router keeps it (profile + live state); times in epoch seconds."""

    id: str
    languages: frozenset[str]
    skills: dict[str, int]
    capacity: dict[str, int]
    presence: str = "offline"
    wrap_until: float = 0.0
    held: dict[str, str] = field(default_factory=dict)  # contact id -> offered | assigned
    load: dict[str, int] = field(default_factory=dict)
    idle: float = 0.0  # when it last became idle (available, holding nothing)
    #: per channel, when it last became idle or last got a contact of that channel: the
    #: "longest idle" order of that channel (least recently routed, so text chats spread out)
    routed: dict[str, float] = field(default_factory=dict)
    misses: int = 0


@dataclass
class ContactView:
    """A contact as the router keeps it."""

    id: str
    channel: str
    language: str
    req: dict[str, int]
    opt: dict[str, int]
    priority: int
    vip: bool
    enqueued_at: float
    ring_since: float
    score: float
    state: str = ContactState.QUEUED.value
    excluded: set[str] = field(default_factory=set)
    excluded_at: dict[str, float] = field(default_factory=dict)
    """When each excluded agent missed the contact; absent: excluded for good (tests)."""
    agent: str | None = None
    offered_at: float | None = None
    deadline: float | None = None
    accepted_at: float | None = None
    finished_at: float | None = None


def queue_score(policy: Policy, *, priority: int, vip: bool, enqueued_at: float) -> float:
    """Ordering key of a waiting contact, lowest served first.

    Effective priority grows linearly while waiting: ``p + vip_boost + b * wait_min``. Comparing
    two contacts at any instant, the ``now`` term cancels, so ordering by
    ``enqueued_at - (p + vip_boost) * 60 / b`` is exact for ever: a static sorted-set score,
    FIFO among equal priorities, and a lower priority overtakes a higher one after waiting
    ``60 / b`` seconds per level (no starvation). With ``b = 0`` priority strictly dominates.
    """
    effective = priority + (policy.vip_boost if vip else 0)
    return enqueued_at - effective * policy.priority_scale_s


def ring_at(policy: Policy, ring_since: float, now: float) -> Ring:
    """The bullseye ring in force after waiting ``now - ring_since`` seconds."""
    waited = now - ring_since
    ring = policy.rings[0]
    for step, candidate in zip(policy.aging, policy.rings[1:], strict=True):
        if waited >= step.after_s:
            ring = candidate
    return ring


def next_ring_at(policy: Policy, ring_since: float, now: float) -> float | None:
    """When the next ring starts, or None in the outermost ring."""
    for step in policy.aging:
        if ring_since + step.after_s > now:
            return ring_since + step.after_s
    return None


def requirements(req: Mapping[str, int], opt: Mapping[str, int], ring: Ring) -> dict[str, int]:
    """Minimum proficiency per skill in a ring; never below 1 (the skill itself stays needed).

    Optional skills are required in the inner rings (bullseye) until a ring drops them.
    """
    out = {s: max(1, m - ring.lower_by) for s, m in req.items()}
    if not ring.drop_optional:
        for s, m in opt.items():
            out[s] = max(out.get(s, 0), max(1, m - ring.lower_by))
    return out


def meets(skills: Mapping[str, int], reqs: Mapping[str, int]) -> bool:
    return all(skills.get(s, 0) >= m for s, m in reqs.items())


def fit(
    skills: Mapping[str, int], req: Mapping[str, int], opt: Mapping[str, int]
) -> tuple[int, int]:
    """Proficiency fit: the agent's levels summed over required, then optional skills."""
    return sum(skills.get(s, 0) for s in req), sum(skills.get(s, 0) for s in opt)


def free_capacity(policy: Policy, agent: AgentView, channel: str) -> int:
    """Free slots on ``channel``; an exclusive channel (voice, video) in use blocks the others."""
    for ch in policy.exclusive_channels:
        if ch != channel and agent.load.get(ch, 0) > 0:
            return 0
    return agent.capacity.get(channel, 0) - agent.load.get(channel, 0)


def channel_change_refusal(policy: Policy, agent: AgentView, old: str, new: str) -> str | None:
    """Why the agent holding a contact on ``old`` cannot keep it on ``new``, or None.

    The check an offer on ``new`` makes (:func:`free_capacity`), with the contact itself taken
    off ``old`` first so that it is not counted twice: ``"exclusive_channels"`` when the agent
    holds a contact of an exclusive channel other than ``new``, ``"capacity"`` when ``new`` has
    no free slot.
    """
    load = dict(agent.load)
    load[old] = max(0, load.get(old, 0) - 1)
    for ch in policy.exclusive_channels:
        if ch != new and load.get(ch, 0) > 0:
            return "exclusive_channels"
    if load.get(new, 0) >= agent.capacity.get(new, 0):
        return "capacity"
    return None


def takes_offers(agent: AgentView) -> bool:
    return agent.presence == AgentState.AVAILABLE and agent.wrap_until == 0


def derive_state(agent: AgentView) -> AgentState:
    """offline/away as chosen; else wrap_up, busy (holds a contact) or available."""
    if agent.presence != AgentState.AVAILABLE:
        return AgentState(agent.presence)
    if agent.wrap_until > 0:
        return AgentState.WRAP_UP
    if agent.held:
        return AgentState.BUSY
    return AgentState.AVAILABLE


def rank_key(fit_total: int, since: float, agent_id: str) -> tuple[int, float, str]:
    """Sort key, smallest best: highest fit, then longest idle on the channel, then larger id.

    The id tie-break is descending because the Lua index is read in reverse lexical order.
    """
    return (-fit_total, since, _desc(agent_id))


class _desc(str):
    """A string that sorts in reverse."""

    def __lt__(self, other: str) -> bool:
        return str.__gt__(self, other)

    def __gt__(self, other: str) -> bool:
        return str.__lt__(self, other)


def primary_skill(reqs: Mapping[str, int]) -> tuple[str, int]:
    """The skill whose index range the candidate window reads: highest minimum, then name."""
    if not reqs:
        return "*", 0
    skill = min(reqs, key=lambda s: (-reqs[s], s))
    return skill, reqs[skill]


def is_excluded(policy: Policy, contact: ContactView, agent_id: str, now: float) -> bool:
    """Whether the agent's exclusion from the contact (a reject or expiry) still runs."""
    if agent_id not in contact.excluded:
        return False
    since = contact.excluded_at.get(agent_id)
    return since is None or now - since < policy.exclusion_s


def pick_agent(
    agents: Iterable[AgentView], contact: ContactView, ring: Ring, now: float, policy: Policy
) -> tuple[AgentView, Explanation] | None:
    """Best eligible agent for a contact (reference semantics of the Lua candidate window)."""
    reqs = requirements(contact.req, contact.opt, ring)
    scored: list[tuple[tuple[int, float, str], AgentView, ScoreParts]] = []
    for agent in agents:
        if (
            not takes_offers(agent)
            or contact.language not in agent.languages
            or is_excluded(policy, contact, agent.id, now)
            or free_capacity(policy, agent, contact.channel) <= 0
            or not meets(agent.skills, reqs)
        ):
            continue
        fr, fo = fit(agent.skills, contact.req, contact.opt)
        since = agent.routed.get(contact.channel, agent.idle)
        parts = ScoreParts(agent_id=agent.id, fit_required=fr, fit_optional=fo, idle_s=now - since)
        scored.append((rank_key(fr + fo, since, agent.id), agent, parts))
    if not scored:
        return None
    scored.sort(key=lambda item: item[0])
    explanation = Explanation(
        trigger="contact",
        ring=ring.index,
        considered=len(scored),
        winner=scored[0][2],
        candidates=[parts for _, _, parts in scored[:EXPLAIN_TOP]],
    )
    return scored[0][1], explanation


def can_serve(policy: Policy, agent: AgentView, contact: ContactView, now: float) -> bool:
    """Whether the agent may be offered this contact now (capacity included)."""
    ring = ring_at(policy, contact.ring_since, now)
    return (
        takes_offers(agent)
        and contact.language in agent.languages
        and not is_excluded(policy, contact, agent.id, now)
        and free_capacity(policy, agent, contact.channel) > 0
        and meets(agent.skills, requirements(contact.req, contact.opt, ring))
    )


def pick_contact(
    agent: AgentView, queued: Iterable[ContactView], now: float, policy: Policy
) -> ContactView | None:
    """The contact an agent with free capacity takes: lowest queue score, then id."""
    best: ContactView | None = None
    for contact in queued:
        if not can_serve(policy, agent, contact, now):
            continue
        if best is None or (contact.score, contact.id) < (best.score, best.id):
            best = contact
    return best


def expected_wait(position: int, aht_s: float, eligible_agents: int, concurrency: int) -> float:
    """EWT = position x AHT / (eligible agents x concurrency per agent on the channel).

    ``position`` counts from 1 (next to be served), ``aht_s`` is the mean of recent handle times
    of the channel, ``eligible_agents`` the logged-in agents with the language and the primary
    skill at the current ring's minimum; with nobody eligible the estimate assumes one agent.
    """
    servers = max(1, eligible_agents) * max(1, concurrency)
    return position * aht_s / servers


def stat_skill(req: Mapping[str, int]) -> str:
    """The skill a contact is counted under in the snapshot: its first required skill."""
    return min(req) if req else GENERAL


def build_snapshot(
    policy: Policy,
    agents: Iterable[AgentView],
    queued: Iterable[ContactView],
    stats: Mapping[str, str],
    now: float,
) -> dict[str, Any]:
    """Supervisor view per (language, skill): waiting, longest wait, agents by state, SL."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}

    def group(language: str, skill: str) -> dict[str, Any]:
        key = (language, skill)
        if key not in groups:
            groups[key] = {
                "language": language,
                "skill": skill,
                "waiting": 0,
                "longest_wait_s": 0.0,
                "agents": {s.value: 0 for s in AgentState},
                "answered": 0,
                "answered_in_sl": 0,
                "service_level": None,
            }
        return groups[key]

    totals = {s.value: 0 for s in AgentState}
    for agent in agents:
        state = derive_state(agent).value
        totals[state] += 1
        for language in agent.languages:
            for skill in dict.fromkeys((*agent.skills, GENERAL)):  # general counted once
                group(language, skill)["agents"][state] += 1
    waiting = 0
    for contact in queued:
        waiting += 1
        g = group(contact.language, stat_skill(contact.req))
        g["waiting"] += 1
        g["longest_wait_s"] = max(g["longest_wait_s"], now - contact.enqueued_at)
    for name, value in stats.items():
        language, skill, what = name.split("|")
        g = group(language, skill)
        g["answered" if what == "answered" else "answered_in_sl"] += int(value)
    for g in groups.values():
        if g["answered"]:
            g["service_level"] = g["answered_in_sl"] / g["answered"]
    return {
        "time": now,
        "service_level_s": policy.service_level_s,
        "waiting": waiting,
        "agents": totals,
        "groups": sorted(groups.values(), key=lambda g: (g["language"], g["skill"])),
    }


def at_risk(
    policy: Policy, agents: Iterable[AgentView], queued: Iterable[ContactView], now: float
) -> list[dict[str, Any]]:
    """Waiting contacts no logged-in agent may take now: none has the language and skills
    (``no_agent``), or every one who has missed it and is excluded (``all_excluded``, with
    when the first exclusion ends). Capacity is not considered: a busy agent frees up."""
    staffed = [a for a in agents if a.presence == "available"]
    out: list[dict[str, Any]] = []
    for contact in queued:
        if contact.state != "queued":
            continue
        reqs = requirements(contact.req, contact.opt, ring_at(policy, contact.ring_since, now))
        able = [
            a for a in staffed
            if contact.language in a.languages and meets(a.skills, reqs)
            and a.capacity.get(contact.channel, 0) > 0
        ]
        free = [a for a in able if not is_excluded(policy, contact, a.id, now)]
        if free:
            continue
        entry: dict[str, Any] = {
            "contact_id": contact.id,
            "language": contact.language,
            "channel": contact.channel,
            "waited_s": round(now - contact.enqueued_at, 1),
            "reason": "all_excluded" if able else "no_agent",
        }
        if able:
            entry["excluded_until"] = min(
                contact.excluded_at.get(a.id, float("inf")) + policy.exclusion_s for a in able
            )
        out.append(entry)
    return sorted(out, key=lambda e: -e["waited_s"])


__all__ = [
    "CHANNELS",
    "AgentView",
    "ContactView",
    "at_risk",
    "build_snapshot",
    "can_serve",
    "channel_change_refusal",
    "derive_state",
    "expected_wait",
    "fit",
    "free_capacity",
    "is_excluded",
    "meets",
    "next_ring_at",
    "pick_agent",
    "pick_contact",
    "primary_skill",
    "queue_score",
    "rank_key",
    "requirements",
    "ring_at",
    "stat_skill",
    "takes_offers",
]
