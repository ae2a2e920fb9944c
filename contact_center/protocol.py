"""The WebSocket signalling protocol: one pydantic model per message, tagged by ``type``.

Every client request carries an ``id``; the server answers it with ``ack`` (whose ``data`` is
the request's ``result_model``) or ``error`` whose ``ref`` is that id. Each request model says
which roles may send it (``roles``) and what its answer holds (``result_model``); the handlers in
``ws.handlers`` are keyed by the request class. Server pushes (``session.state``, ``offer``...)
carry no ``ref``. To add a message: a model here (and in the union below), a handler there.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from contact_center.db.models import Role
from routing.models import Channel

PROTOCOL_VERSION = 1
MAX_FRAME_BYTES = 64 * 1024

Language = Literal["en", "zh", "yue"]
ContactId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
SkillName = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_]*$")]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    v: Literal[1] = 1


CUSTOMER = frozenset({Role.CUSTOMER})
ADVISOR = frozenset({Role.ADVISOR})
PARTIES = CUSTOMER | ADVISOR


class Result(BaseModel):
    """What an ``ack`` carries in ``data`` for a request (nothing, unless a request says more)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class _Request(_Message):
    id: Annotated[str, Field(min_length=1, max_length=64)]

    roles: ClassVar[frozenset[Role]] = PARTIES
    """Who may send it; anyone else gets ``forbidden``."""
    result_model: ClassVar[type[Result]] = Result
    """What the ``ack`` carries in ``data``."""


# ---------------------------------------------------------------- results


class StartResult(Result):
    contact_id: str
    state: str
    resume_token: str | None


class ResumeResult(Result):
    contact_id: str
    state: str


class ChatResult(Result):
    seq: int
    """The line's place in the contact's chat, given by the server."""


class UpgradeResult(Result):
    agreed: bool
    """True once both parties asked: the channel is added."""


class StateResult(Result):
    state: str


class HelloResult(Result):
    rejoin_token: str | None = None
    """Given to a hello that came with a token or as a guest (no cookie): send it as the next
    hello's ``token`` after a dropped connection (single use; each hello gives a new one)."""


class ContactFacts(BaseModel):
    """What the advisor is told about a contact: who, in what language, about what, how urgent."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    customer_name: str
    """The signed-in customer's display name, or the guest label ("Guest")."""
    guest: bool
    """Nobody signed in: the name is not known."""
    vip: bool
    """The customer's own VIP flag (their account or the bank's signed identity), nothing else."""
    priority: int
    """The routing priority (the bot raises it for urgent intents); apart from ``vip``."""
    language: str
    topic: str | None
    intent: str | None
    """What the bot understood the customer wants, when the bot handed the contact over."""
    skills: dict[str, int]
    waiting_s: float
    """Seconds since the contact last went to the queue (from the bot, a start, a transfer or a
    lost advisor; offers that came back do not restart it), as of this message; once connected,
    how long it waited."""
    transfer_note: str | None = None
    """The note of the advisor who last transferred the contact here, for the next one."""
    transferred_by: str | None = None
    """That advisor's display name."""


class AcceptResult(Result):
    contact_id: str
    state: str
    channels: list[str]
    language: str
    transcript: list[dict[str, Any]]
    media_url: str | None
    facts: ContactFacts | None = None


class WrapupResult(Result):
    ended: list[str]
    """The contacts that left wrap-up."""
    recorded: bool = False
    """An outcome or notes were stored with the contact."""


class RecordingResult(Result):
    paused: bool
    """Whether the media recording is paused now."""
    pause_id: str
    resume_at: datetime | None = None
    """When the pause ends by itself (the configured limit), if paused."""


# ---------------------------------------------------------------- client -> server


class Hello(_Request):
    """First frame: authenticates with a short-lived token when there is no cookie session."""

    type: Literal["hello"]
    roles = frozenset(Role)
    result_model = HelloResult
    token: str | None = Field(default=None, max_length=512)
    """A single-use token (``/api/ws-token``, or the ``rejoin_token`` of an earlier hello)."""
    bank_token: str | None = Field(default=None, max_length=4096)
    """The bank's signed identity (HS256 JWT, README *Signed customer identity*): signs the
    customer in without a cookie (the widget in a bank's page, where cookies may be blocked)."""
    guest: bool = False
    """No cookie and no token: a new guest customer (the widget in a page of another site)."""
    media_only: bool = False
    """A second connection that only carries ``rtc.*`` to the instance holding the media:
    it does not count as the person being present (no presence, no grace period)."""


class SessionStart(_Request):
    """Customer starts a contact."""

    type: Literal["session.start"]
    roles = CUSTOMER
    result_model = StartResult
    channels: list[Channel] = Field(min_length=1, max_length=3)
    language: Language = "en"
    topic: str | None = Field(default=None, max_length=64)
    skip_bot: bool = False


class SessionResume(_Request):
    """Customer reconnects to a contact after a dropped WebSocket."""

    type: Literal["session.resume"]
    roles = CUSTOMER
    result_model = ResumeResult
    resume_token: str = Field(min_length=16, max_length=256)


class ChatSend(_Request):
    type: Literal["chat.send"]
    result_model = ChatResult
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
    result_model = UpgradeResult
    contact_id: ContactId
    channel: Channel


class SessionUpgradeDecline(_Request):
    """Say "not now" to the other party's ``session.upgrade``: they are told at once
    (``session.upgrade_declined``) and may ask again later. Only an upgrade the other party
    asked for, and not yet agreed, can be declined (else ``invalid_state``)."""

    type: Literal["session.upgrade_decline"]
    contact_id: ContactId
    channel: Literal["voice", "video"]


class SessionDowngrade(_Request):
    """Drop the richer media of a connected contact: video -> voice, or voice/video -> text.

    Either party may do it alone (nobody has to agree to show less); the other is told
    (``session.downgrade`` push, then ``session.state`` with the new channels). The dropped
    tracks' recording files are closed."""

    type: Literal["session.downgrade"]
    result_model = StateResult
    contact_id: ContactId
    to: Literal["voice", "text"]
    """The medium to go on with: ``voice`` (from video) or ``text`` (from voice or video)."""


MicrophoneState = Literal["on", "muted", "missing", "denied"]
CameraState = Literal["on", "off", "missing", "denied", "none"]
ConnectionQuality = Literal["good", "poor", "unknown"]


class MediaStateReport(_Request):
    """What a party's own media is like: the other party is told (``media.state`` push).

    Sent when a value changes (not on every statistics tick): a microphone or camera that is
    missing or refused, muted or turned off, and the connection quality from ``getStats``."""

    type: Literal["media.state"]
    contact_id: ContactId
    microphone: MicrophoneState
    camera: CameraState
    """``none``: the call has no video."""
    connection: ConnectionQuality = "unknown"
    loss_pct: float | None = Field(default=None, ge=0, le=100)
    """Inbound packets lost, in per cent, over the last seconds."""
    rtt_ms: float | None = Field(default=None, ge=0, le=60_000)
    """Round-trip time to the server."""
    frames_decoded: int | None = Field(default=None, ge=0)
    """Video frames decoded from the other party so far."""


class SessionLeaveMessage(_Request):
    """A waiting customer leaves a message instead of waiting (e.g. nobody who could serve them
    is signed in), and may ask to be called back. The message is kept on the contact (a chat
    line and a ``message_left`` event, in the recording), supervisors get an alarm, and the
    contact ends (``abandoned``, reason ``message_left``)."""

    type: Literal["session.leave_message"]
    roles = CUSTOMER
    result_model = StateResult
    contact_id: ContactId
    text: str = Field(min_length=1, max_length=2000)
    callback: bool = False
    """Call me back (on ``phone``)."""
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9][0-9 ()-]{5,23}$")

    @model_validator(mode="after")
    def _phone_for_callback(self) -> SessionLeaveMessage:
        if self.callback and not self.phone:
            raise ValueError("a callback needs a phone number")
        return self


class SessionEnd(_Request):
    type: Literal["session.end"]
    result_model = StateResult
    contact_id: ContactId


class AgentStatusRequest(_Request):
    type: Literal["agent.status"]
    roles = ADVISOR
    result_model = StateResult
    status: Literal["available", "away", "offline"]


class OfferAccept(_Request):
    type: Literal["offer.accept"]
    roles = ADVISOR
    result_model = AcceptResult
    contact_id: ContactId


class OfferReject(_Request):
    type: Literal["offer.reject"]
    roles = ADVISOR
    contact_id: ContactId


class SessionTransfer(_Request):
    type: Literal["session.transfer"]
    roles = ADVISOR
    result_model = StateResult
    contact_id: ContactId
    skills: dict[SkillName, Annotated[int, Field(ge=1, le=5)]] = Field(max_length=8)
    language: Language | None = None
    note: str | None = Field(default=None, max_length=1000)
    """For the next advisor: shown on their offer and in their panel (card numbers masked)."""
    queue_anyway: bool = False
    """Transfer even when no signed-in advisor has the skill and language (it then waits until
    one signs in); without it such a transfer is refused with ``nobody_can_serve``."""


class WrapupDone(_Request):
    type: Literal["wrapup.done"]
    roles = ADVISOR
    result_model = WrapupResult
    contact_id: ContactId | None = None
    """The contact to wrap up: one of yours in wrap-up, or one you transferred on or whose
    wrap-up time ran out before you recorded it. Without it: all of yours in wrap-up."""
    outcome: str | None = Field(default=None, max_length=32)
    """One of the configured outcome codes (``CC_WRAPUP_OUTCOMES``); another is refused with
    ``unknown_outcome``."""
    notes: str | None = Field(default=None, max_length=4000)
    """Wrap-up notes, kept with the contact and in its recording (card numbers masked)."""


class RecordingPause(_Request):
    """Secure pause: stop recording the contact's media, e.g. while the customer reads out a
    card number. It resumes with ``recording.resume`` or by itself after the configured limit
    (``CC_RECORDING_PAUSE_LIMIT_S``, 120 s by default); who paused, why and the gap are kept in
    the recording. Both parties get ``recording.state``."""

    type: Literal["recording.pause"]
    roles = ADVISOR
    result_model = RecordingResult
    contact_id: ContactId
    reason: str = Field(min_length=3, max_length=500)
    """Why (required), e.g. "customer reads out card number"."""


class RecordingResume(_Request):
    """Resume a paused recording before its limit."""

    type: Literal["recording.resume"]
    roles = ADVISOR
    result_model = RecordingResult
    contact_id: ContactId


ClientMessage = Annotated[
    Hello
    | SessionStart
    | SessionResume
    | ChatSend
    | ChatTyping
    | RtcOffer
    | RtcCandidate
    | SessionUpgrade
    | SessionUpgradeDecline
    | SessionDowngrade
    | MediaStateReport
    | SessionLeaveMessage
    | SessionEnd
    | AgentStatusRequest
    | OfferAccept
    | OfferReject
    | SessionTransfer
    | WrapupDone
    | RecordingPause
    | RecordingResume,
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
    vip: bool = False
    """A VIP customer (their flag, or a signed bank identity that says so)."""


class SessionState(_Message):
    type: Literal["session.state"] = "session.state"
    contact_id: str
    state: str
    """The contact's state; to an advisor also ``withdrawn`` (an offer taken back) and
    ``wrapup_pending`` (on connecting: a contact they handled, transferred on or whose wrap-up
    time ran out, that they have not wrapped up; ``wrapup.done`` with its id records it)."""
    reason: str | None = None
    resume_token: str | None = None
    channels: list[Channel] = Field(default_factory=list)
    at: datetime
    advisor_name: str | None = None
    """The display name of the advisor who has the contact (once connected)."""
    facts: ContactFacts | None = None
    """Sent to the advisor only (an accepted or resumed contact): what the panel shows."""


class QueuePositionPush(_Message):
    type: Literal["queue.position"] = "queue.position"
    contact_id: str
    position: int
    ewt_s: float
    staffed: bool = True
    """False: nobody who could serve this contact is signed in, so ``ewt_s`` means nothing;
    the customer may leave a message instead (``session.leave_message``)."""


class ChatMessage(_Message):
    type: Literal["chat.message"] = "chat.message"
    contact_id: str
    seq: int
    sender: Literal["customer", "advisor", "bot", "system"]
    text: str
    at: datetime
    sender_name: str | None = None
    """An advisor's line: that advisor's display name (after a transfer there are several)."""
    sender_ref: str | None = None
    """An advisor's line: that advisor's ref, so that a console tells its own lines apart."""


class ChatTypingNotice(_Message):
    type: Literal["chat.typing"] = "chat.typing"
    contact_id: str
    sender: Literal["customer", "advisor"]


class BotMessage(_Message):
    type: Literal["bot.message"] = "bot.message"
    contact_id: str
    text: str
    at: datetime


class VoiceCaption(_Message):
    """What the bot hears the customer say, live: partials, then the final utterance."""

    type: Literal["voice.caption"] = "voice.caption"
    contact_id: str
    text: str
    final: bool
    confidence: float | None = None
    sure: bool | None = None
    """A final's: False when the recogniser is unsure; the line is not given to the bot, and
    the customer is asked to say it again."""


class VoiceStatus(_Message):
    """Whether the bot listens to a voice or video customer: ``listening`` once the recogniser
    takes the customer's audio, ``unavailable`` when the contact's language has no speech model
    (the contact goes on by text)."""

    type: Literal["voice.status"] = "voice.status"
    contact_id: str
    state: Literal["listening", "unavailable"]
    language: str


class OfferPush(_Message):
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
    facts: ContactFacts | None = None
    """Who the customer is, intent, VIP and waiting time (``explanation``'s advisors carry a
    ``name`` beside their ``agent_id``)."""


class RtcAnswer(_Message):
    type: Literal["rtc.answer"] = "rtc.answer"
    contact_id: str
    sdp: str


class UpgradeRequest(_Message):
    type: Literal["session.upgrade"] = "session.upgrade"
    contact_id: str
    channel: Channel
    by: Literal["customer", "advisor"]


class UpgradeDeclined(_Message):
    """The other party said "not now" to this party's ``session.upgrade``."""

    type: Literal["session.upgrade_declined"] = "session.upgrade_declined"
    contact_id: str
    channel: Channel
    by: Literal["customer", "advisor"]


class DowngradeNotice(_Message):
    """The other party dropped the richer media (``session.downgrade``)."""

    type: Literal["session.downgrade"] = "session.downgrade"
    contact_id: str
    to: Channel
    by: Literal["customer", "advisor"]


class MediaStatePush(_Message):
    """The other party's media as they report it (``media.state``)."""

    type: Literal["media.state"] = "media.state"
    contact_id: str
    party: Literal["customer", "advisor"]
    microphone: MicrophoneState
    camera: CameraState
    connection: ConnectionQuality
    loss_pct: float | None = None
    rtt_ms: float | None = None
    at: datetime


class AgentStateNotice(_Message):
    """The advisor's routing state as the router sees it (busy, wrap_up, away...)."""

    type: Literal["agent.state"] = "agent.state"
    state: str
    reason: str | None = None
    """Why, when the router chose the state: ``missed_offers`` (away after that many offers
    expired or were rejected in a row: set yourself available to take contacts again)."""
    missed_offers: int | None = None
    """With ``missed_offers``: how many in a row."""
    wrap_up_until: datetime | None = None
    """In ``wrap_up``: when it ends by itself (``wrapup.done`` ends it earlier)."""


class RecordingStatePush(_Message):
    """The contact's media recording was paused or resumed (by whom, why, until when)."""

    type: Literal["recording.state"] = "recording.state"
    contact_id: str
    paused: bool
    pause_id: str
    by: str
    """The advisor's ref, or ``system`` when the limit or the end of the call resumed it."""
    reason: str
    resume_at: datetime | None = None
    at: datetime


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
    | QueuePositionPush
    | ChatMessage
    | ChatTypingNotice
    | BotMessage
    | VoiceCaption
    | VoiceStatus
    | OfferPush
    | RtcAnswer
    | UpgradeRequest
    | UpgradeDeclined
    | DowngradeNotice
    | MediaStatePush
    | AgentStateNotice
    | PeerEvent
    | RecordingStatePush,
    Field(discriminator="type"),
]
server_message_adapter: TypeAdapter[ServerMessage] = TypeAdapter(ServerMessage)
