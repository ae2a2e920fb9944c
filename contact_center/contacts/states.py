"""The contact state machine: one enum and one transition table."""

from __future__ import annotations

from enum import StrEnum

from contact_center.errors import ClientError, ErrorCode


class ContactState(StrEnum):
    BOT = "bot"
    QUEUED = "queued"
    OFFERED = "offered"
    CONNECTED = "connected"
    WRAP_UP = "wrap_up"
    ENDED = "ended"
    ABANDONED = "abandoned"


S = ContactState

#: Every allowed move. Transfers, rejected or expired offers and a dropped advisor go back to
#: ``queued``; a customer who leaves before an advisor answers is ``abandoned``.
TRANSITIONS: dict[ContactState, frozenset[ContactState]] = {
    S.BOT: frozenset({S.QUEUED, S.ENDED, S.ABANDONED}),
    S.QUEUED: frozenset({S.OFFERED, S.ABANDONED}),
    S.OFFERED: frozenset({S.CONNECTED, S.QUEUED, S.ABANDONED}),
    S.CONNECTED: frozenset({S.WRAP_UP, S.QUEUED}),
    S.WRAP_UP: frozenset({S.ENDED}),
    S.ENDED: frozenset(),
    S.ABANDONED: frozenset(),
}

LIVE_STATES = frozenset({S.BOT, S.QUEUED, S.OFFERED, S.CONNECTED})
WAITING_STATES = frozenset({S.BOT, S.QUEUED, S.OFFERED})
FINAL_STATES = frozenset({S.ENDED, S.ABANDONED})


class InvalidTransition(ClientError):
    """A move the table does not allow; the message names the current state."""

    code = ErrorCode.INVALID_STATE

    def __init__(self, contact_id: str, current: str, wanted: str) -> None:
        super().__init__(f"contact {contact_id} is {current}; it cannot become {wanted}")
        self.contact_id = contact_id
        self.current = current
        self.wanted = wanted


def check_transition(contact_id: str, current: str, wanted: ContactState) -> None:
    if wanted not in TRANSITIONS[ContactState(current)]:
        raise InvalidTransition(contact_id, current, wanted.value)
