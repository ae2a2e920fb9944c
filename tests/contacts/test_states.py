"""The contact state machine: every move the table allows, and every one it refuses."""

from __future__ import annotations

import itertools

import pytest

from contact_center.contacts.states import (
    FINAL_STATES,
    LIVE_STATES,
    TRANSITIONS,
    WAITING_STATES,
    ContactState,
    InvalidTransition,
    check_transition,
)
from contact_center.errors import ClientError, ErrorCode, to_error

S = ContactState


def test_every_state_has_a_row_and_final_states_lead_nowhere() -> None:
    assert set(TRANSITIONS) == set(ContactState)
    for state in FINAL_STATES:
        assert TRANSITIONS[state] == frozenset()
    assert WAITING_STATES <= LIVE_STATES
    assert not LIVE_STATES & FINAL_STATES


def test_every_final_state_is_reachable_from_bot() -> None:
    seen, frontier = {S.BOT}, [S.BOT]
    while frontier:
        for nxt in TRANSITIONS[frontier.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    assert seen == set(ContactState)


@pytest.mark.parametrize(("current", "wanted"), list(itertools.product(S, S)))
def test_check_transition_follows_the_table(current: ContactState, wanted: ContactState) -> None:
    if wanted in TRANSITIONS[current]:
        check_transition("c1", current.value, wanted)
        return
    with pytest.raises(InvalidTransition) as raised:
        check_transition("c1", current.value, wanted)
    assert raised.value.current == current.value
    assert raised.value.wanted == wanted.value
    assert f"is {current.value}" in str(raised.value)


def test_a_refused_move_is_the_clients_invalid_state_error() -> None:
    error = InvalidTransition("c1", "ended", "queued")
    assert isinstance(error, ClientError)
    assert to_error(error) == (ErrorCode.INVALID_STATE, "contact c1 is ended; it cannot become queued")


def test_transfers_and_lost_advisors_go_back_to_the_queue() -> None:
    assert S.QUEUED in TRANSITIONS[S.CONNECTED]
    assert S.QUEUED in TRANSITIONS[S.OFFERED]
    assert S.ABANDONED not in TRANSITIONS[S.CONNECTED]  # a connected contact ends in wrap-up
