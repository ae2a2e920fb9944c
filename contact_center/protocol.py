"""The WebSocket signalling protocol: one pydantic model per message, tagged by ``type``.

Every client request carries an ``id``; the server answers it with ``ack`` or ``error`` whose
``ref`` is that id. Server pushes (``session.state``, ``offer``...) carry no ``ref``.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

PROTOCOL_VERSION = 1
MAX_FRAME_BYTES = 64 * 1024

Language = Literal["en", "zh", "yue"]
ContactId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
SkillName = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_]*$")]


class Channel(StrEnum):
    TEXT = "text"
    VOICE = "voice"
    VIDEO = "video"


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    v: Literal[1] = 1


class _Request(_Message):
    id: Annotated[str, Field(min_length=1, max_length=64)]


# ---------------------------------------------------------------- client -> server


class Hello(_Request):
    """First frame: authenticates with a short-lived token when there is no cookie session."""

    type: Literal["hello"]
    token: str | None = Field(default=None, max_length=512)
    media_only: bool = False
    """A second connection that only carries ``rtc.*`` to the instance holding the media:
    it does not count as the person being present (no presence, no grace period)."""


class SessionStart(_Request):
    """Customer starts a contact."""

    type: Literal["session.start"]
    channels: list[Channel] = Field(min_length=1, max_length=3)
    language: Language = "en"
    topic: str | None = Field(default=None, max_length=64)
    skip_bot: bool = False


class SessionResume(_Request):
    """Customer reconnects to a contact after a dropped WebSocket."""

    type: Literal["session.resume"]
    resume_token: str = Field(min_length=16, max_length=256)


class ChatSend(_Request):
    type: Literal["chat.send"]
    contact_id: ContactId
    text: str = Field(min_length=1, max_length=4000)


class ChatTyping(_Request):
    type: Literal["chat.typing"]
    contact_id: ContactId


class RtcOffer(_Request):
    type: Literal["rtc.offer"]
    contact_id: ContactId
    sdp: str = Field(min_length=1, max_length=60_000)


class RtcCandidate(_Request):
    """A trickled ICE candidate (the server gathers completely before answering)."""

    type: Literal["rtc.candidate"]
    contact_id: ContactId
    candidate: str = Field(max_length=1024)
    sdp_mid: str | None = Field(default=None, max_length=64)
    sdp_mline_index: int | None = Field(default=None, ge=0, le=64)


class SessionUpgrade(_Request):
    """Ask (or agree) to add a media channel to a connected contact."""

    type: Literal["session.upgrade"]
    contact_id: ContactId
    channel: Channel


class SessionEnd(_Request):
    type: Literal["session.end"]
    contact_id: ContactId


class AgentStatus(_Request):
    type: Literal["agent.status"]
    status: Literal["available", "away", "offline"]


class OfferAccept(_Request):
    type: Literal["offer.accept"]
    contact_id: ContactId


class OfferReject(_Request):
    type: Literal["offer.reject"]
    contact_id: ContactId


class SessionTransfer(_Request):
    type: Literal["session.transfer"]
    contact_id: ContactId
    skills: dict[SkillName, Annotated[int, Field(ge=1, le=5)]] = Field(max_length=8)
    language: Language | None = None


class WrapupDone(_Request):
    type: Literal["wrapup.done"]
    contact_id: ContactId | None = None


ClientMessage = Annotated[
    Hello
    | SessionStart
    | SessionResume
    | ChatSend
    | ChatTyping
    | RtcOffer
    | RtcCandidate
    | SessionUpgrade
    | SessionEnd
    | AgentStatus
    | OfferAccept
    | OfferReject
    | SessionTransfer
    | WrapupDone,
    Field(discriminator="type"),
]
client_message_adapter: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)


# ---------------------------------------------------------------- server -> client


class Ack(_Message):
    type: Literal["ack"] = "ack"
    ref: str
    data: dict[str, Any] = Field(default_factory=dict)


class Error(_Message):
    type: Literal["error"] = "error"
    ref: str | None = None
    code: str
    message: str


class Welcome(_Message):
    type: Literal["welcome"] = "welcome"
    user: str
    role: str
    display_name: str


class SessionState(_Message):
    type: Literal["session.state"] = "session.state"
    contact_id: str
    state: str
    reason: str | None = None
    resume_token: str | None = None
    channels: list[Channel] = Field(default_factory=list)
    at: datetime


class QueuePosition(_Message):
    type: Literal["queue.position"] = "queue.position"
    contact_id: str
    position: int
    ewt_s: float


class ChatMessage(_Message):
    type: Literal["chat.message"] = "chat.message"
    contact_id: str
    seq: int
    sender: Literal["customer", "advisor", "bot", "system"]
    text: str
    at: datetime


class ChatTypingNotice(_Message):
    type: Literal["chat.typing"] = "chat.typing"
    contact_id: str
    sender: Literal["customer", "advisor"]


class BotMessage(_Message):
    type: Literal["bot.message"] = "bot.message"
    contact_id: str
    text: str
    at: datetime


class Offer(_Message):
    type: Literal["offer"] = "offer"
    contact_id: str
    channels: list[Channel]
    language: str
    skills: dict[str, int]
    priority: int
    expires_at: datetime
    topic: str | None = None
    transcript: list[dict[str, Any]] = Field(default_factory=list)
    explanation: dict[str, Any] = Field(default_factory=dict)
    media_url: str | None = None
    """WebSocket URL of the instance that holds this contact's media: send ``rtc.offer`` there."""


class RtcAnswer(_Message):
    type: Literal["rtc.answer"] = "rtc.answer"
    contact_id: str
    sdp: str


class UpgradeRequest(_Message):
    type: Literal["session.upgrade"] = "session.upgrade"
    contact_id: str
    channel: Channel
    by: Literal["customer", "advisor"]


class AgentStateNotice(_Message):
    """The advisor's routing state as the router sees it (busy, wrap_up, away...)."""

    type: Literal["agent.state"] = "agent.state"
    state: str
    reason: str | None = None


class PeerEvent(_Message):
    """A change in a party's media connection (ICE failed, closed...)."""

    type: Literal["peer.event"] = "peer.event"
    contact_id: str
    party: Literal["customer", "advisor"]
    state: str


ServerMessage = Annotated[
    Ack
    | Error
    | Welcome
    | SessionState
    | QueuePosition
    | ChatMessage
    | ChatTypingNotice
    | BotMessage
    | Offer
    | RtcAnswer
    | UpgradeRequest
    | AgentStateNotice
    | PeerEvent,
    Field(discriminator="type"),
]
server_message_adapter: TypeAdapter[ServerMessage] = TypeAdapter(ServerMessage)
