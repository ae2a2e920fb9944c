"""The one mapper from exceptions to error frames, and the list of codes it can give."""

from __future__ import annotations

import logging

import asyncpg
import pytest
import redis.exceptions
import sqlalchemy.exc
from pydantic import ValidationError

from contact_center.errors import (
    DATABASE_DOWN_MESSAGE,
    INTERNAL_MESSAGE,
    REDIS_DOWN_MESSAGE,
    Conflict,
    ErrorCode,
    Forbidden,
    is_client_caused,
    to_error,
)
from contact_center.protocol import client_message_adapter
from routing.errors import (
    ERRORS_BY_CODE,
    InvalidStateError,
    OfferExpiredError,
    PolicyError,
    RoutingError,
)


def _validation_error(raw: str) -> ValidationError:
    with pytest.raises(ValidationError) as raised:
        client_message_adapter.validate_json(raw)
    return raised.value


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{not json", ErrorCode.BAD_JSON),
        ("[1, 2]", ErrorCode.BAD_REQUEST),
        ('{"id": "1"}', ErrorCode.BAD_REQUEST),
        ('{"type": "nope", "id": "1"}', ErrorCode.UNKNOWN_TYPE),
        ('{"type": "chat.send", "id": "1", "contact_id": "c1"}', ErrorCode.BAD_FIELD),
    ],
)
def test_validation_errors_name_what_is_wrong(raw: str, code: ErrorCode) -> None:
    error = _validation_error(raw)
    assert is_client_caused(error)
    assert to_error(error)[0] == code


def test_bad_field_names_the_field() -> None:
    code, message = to_error(_validation_error('{"type": "chat.send", "id": "1", "contact_id": "c1"}'))
    assert code == ErrorCode.BAD_FIELD and message.startswith("text:")


def test_client_errors_keep_their_code_and_message() -> None:
    assert to_error(Forbidden("not yours")) == ("forbidden", "not yours")
    assert to_error(Conflict("busy", code=ErrorCode.NO_CAPACITY)) == ("no_capacity", "busy")


def test_router_errors_a_client_causes_pass_through() -> None:
    error = OfferExpiredError("the offer expired")
    assert is_client_caused(error)
    assert to_error(error) == ("offer_expired", "the offer expired")
    assert to_error(InvalidStateError("agent is busy", state="busy"))[0] == "invalid_state"


@pytest.mark.parametrize("error", [RoutingError("ERR lua: attempt to index nil"), PolicyError("bad policy file at /etc/x")])
def test_unexpected_router_errors_are_ours_and_their_text_stays_inside(error: RoutingError) -> None:
    assert not is_client_caused(error)
    assert to_error(error) == (ErrorCode.INTERNAL, INTERNAL_MESSAGE)


def test_any_other_exception_is_internal() -> None:
    assert to_error(KeyError("secret internals")) == (ErrorCode.INTERNAL, INTERNAL_MESSAGE)


class _AdaptedError(Exception):
    """What SQLAlchemy's asyncpg adapter raises in asyncpg's place: its own class, the SQLSTATE."""

    def __init__(self, message: str, *, sqlstate: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection")),
         DATABASE_DOWN_MESSAGE),
        (sqlalchemy.exc.DBAPIError("SELECT 1", {}, Exception("gone"), connection_invalidated=True),
         DATABASE_DOWN_MESSAGE),
        (sqlalchemy.exc.DBAPIError("SELECT 1", {}, asyncpg.exceptions.ConnectionDoesNotExistError(
            "connection was closed in the middle of operation")), DATABASE_DOWN_MESSAGE),
        (sqlalchemy.exc.DBAPIError("SELECT 1", {}, asyncpg.exceptions.CannotConnectNowError(
            "the database system is starting up")), DATABASE_DOWN_MESSAGE),
        (sqlalchemy.exc.DBAPIError("SELECT 1", {}, _AdaptedError(
            "the database system is starting up", sqlstate="57P03")), DATABASE_DOWN_MESSAGE),
        (sqlalchemy.exc.TimeoutError("QueuePool limit reached"), DATABASE_DOWN_MESSAGE),
        (redis.exceptions.ConnectionError("Connection refused"), REDIS_DOWN_MESSAGE),
        (redis.exceptions.TimeoutError("Timeout reading from socket"), REDIS_DOWN_MESSAGE),
    ],
)
def test_the_database_or_redis_not_answering_is_unavailable_not_internal(
    error: Exception, message: str
) -> None:
    assert not is_client_caused(error)  # ours: logged
    assert to_error(error) == (ErrorCode.UNAVAILABLE, message)


def test_a_refused_connection_is_unavailable_but_a_bad_statement_is_internal() -> None:
    assert to_error(ConnectionRefusedError(111, "Connect call failed"))[0] == ErrorCode.UNAVAILABLE
    duplicate = sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("duplicate key"))
    assert to_error(duplicate) == (ErrorCode.INTERNAL, INTERNAL_MESSAGE)
    assert to_error(redis.exceptions.ResponseError("WRONGTYPE"))[0] == ErrorCode.INTERNAL


def test_every_code_a_client_may_receive_is_listed() -> None:
    listed = {code.value for code in ErrorCode}
    client_router_codes = {
        code for code, cls in ERRORS_BY_CODE.items()
        if is_client_caused(cls("x"))
    }
    assert client_router_codes <= listed
    assert len(listed) == len(ErrorCode)  # no two names share a code
    logging.getLogger(__name__).info("%d codes", len(listed))
