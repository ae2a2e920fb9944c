"""Plain data of the router: agents, contacts, offers, assignments, explanations and events."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

#: Ids travel inside Lua index members and stream fields: a safe ASCII alphabet, no ``|``.
Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:@-]{1,64}$")]
#: Skill names sort below ``|`` in the lexicographic agent index (see routing/lua/common.lua).
SkillName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_.-]{1,32}$")]
Proficiency = Annotated[int, Field(ge=1, le=5)]


class Channel(StrEnum):
    TEXT = "text"
    VOICE = "voice"
    VIDEO = "video"


#: Fixed order shared with the Lua key layout (routing/keys.py).
CHANNELS: tuple[Channel, ...] = (Channel.TEXT, Channel.VOICE, Channel.VIDEO)


class AgentState(StrEnum):
    OFFLINE = "offline"
    AVAILABLE = "available"
    BUSY = "busy"
    WRAP_UP = "wrap_up"
    AWAY = "away"


#: States an advisor (or the session layer) may ask for; busy and wrap_up are derived by the router.
SETTABLE_STATES: frozenset[AgentState] = frozenset(
    {AgentState.OFFLINE, AgentState.AVAILABLE, AgentState.AWAY}
)


class ContactState(StrEnum):
    QUEUED = "queued"
    OFFERED = "offered"
    ASSIGNED = "assigned"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


TERMINAL_STATES: frozenset[ContactState] = frozenset(
    {ContactState.COMPLETED, ContactState.CANCELLED}
)


class EventType(StrEnum):
    CONTACT_QUEUED = "contact_queued"
    CONTACT_REQUEUED = "contact_requeued"
    CONTACT_CANCELLED = "contact_cancelled"
    CONTACT_ASSIGNED = "contact_assigned"
    CONTACT_COMPLETED = "contact_completed"
    CONTACT_TRANSFERRED = "contact_transferred"
    CONTACT_CHANNEL_CHANGED = "contact_channel_changed"
    OFFER_CREATED = "offer_created"
    OFFER_EXPIRED = "offer_expired"
    OFFER_ACCEPTED = "offer_accepted"
    OFFER_REJECTED = "offer_rejected"
    OFFER_RELEASED = "offer_released"
    AGENT_STATE_CHANGED = "agent_state_changed"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AgentProfile(_Frozen):
    """What an agent can do; capacity channels left out take the policy's default capacity."""

    id: Id
    languages: frozenset[str]
    skills: dict[SkillName, Proficiency] = Field(default_factory=dict)
    capacity: dict[Channel, Annotated[int, Field(ge=0, le=50)]] | None = None


class ContactRequest(_Frozen):
    """A customer waiting for an advisor; ``enqueued_at`` None means now."""

    id: Id
    channel: Channel
    language: str
    skills: dict[SkillName, Proficiency] = Field(default_factory=dict)
    optional_skills: dict[SkillName, Proficiency] = Field(default_factory=dict)
    priority: Annotated[int, Field(ge=-1000, le=1000)] = 0
    vip: bool = False
    enqueued_at: float | None = None
    excluded_agents: frozenset[Id] = frozenset()


class ScoreParts(_Frozen):
    """Why an agent ranks where it does: proficiency fit first, then longest idle."""

    agent_id: str
    fit_required: int
    fit_optional: int
    idle_s: float

    @property
    def fit(self) -> int:
        return self.fit_required + self.fit_optional


class Explanation(_Frozen):
    """Why this agent got this contact.

    ``trigger`` is ``contact`` (a contact looked for agents: ``candidates`` are the best agents
    of the window, best first) or ``agent`` (an agent gained capacity and took the first contact
    it could serve: ``considered`` counts the queued contacts it looked at).
    """

    trigger: str
    ring: int
    considered: int
    winner: ScoreParts
    candidates: list[ScoreParts] = Field(default_factory=list)


class Offer(_Frozen):
    contact_id: str
    agent_id: str
    channel: Channel
    offered_at: float
    deadline: float
    explanation: Explanation | None = None


class Assignment(_Frozen):
    contact_id: str
    agent_id: str
    channel: Channel
    offered_at: float
    accepted_at: float
    explanation: Explanation | None = None


class QueuePosition(_Frozen):
    """Place in the contact's (language, channel) queue, 1 = next; see RouterStore.position."""

    position: int
    ewt_s: float
    eligible_agents: int = 0
    aht_s: float = 0.0
    excluded_count: int = 0
    """Staffed agents who would be eligible but missed this contact (their exclusion runs)."""
    at_risk: bool = False
    """No staffed agent may take it now (none eligible, or every eligible one excluded)."""


class ContactStatus(_Frozen):
    contact_id: str
    state: ContactState
    channel: Channel
    language: str
    skills: dict[str, int]
    optional_skills: dict[str, int]
    priority: int
    vip: bool
    enqueued_at: float
    queue_score: float
    excluded_agents: frozenset[str]
    agent_id: str | None = None
    offered_at: float | None = None
    deadline: float | None = None
    accepted_at: float | None = None
    finished_at: float | None = None


class AgentStatus(_Frozen):
    agent_id: str
    state: AgentState
    languages: frozenset[str]
    skills: dict[str, int]
    capacity: dict[Channel, int]
    load: dict[Channel, int]
    offered: frozenset[str]
    assigned: frozenset[str]
    last_idle: float
    missed_offers: int
    wrap_up_until: float | None = None


class RoutingEvent(_Frozen):
    """One event of a routing decision. A decision's events share one stream entry (in order);
    ``id`` is ``<stream entry id>/<position in the entry>``."""

    id: str
    type: EventType
    time: float
    contact_id: str | None = None
    agent_id: str | None = None
    explanation: Explanation | None = None
    data: dict[str, Any] = Field(default_factory=dict)

    @property
    def entry_id(self) -> str:
        """The stream entry holding this event (what a consumer group acknowledges)."""
        return self.id.partition("/")[0]
