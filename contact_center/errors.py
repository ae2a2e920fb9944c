"""Errors a client can cause, each with a stable code, and the one mapper to error frames.

``ErrorCode`` is the list of every code a client may receive; the protocol document is written
from it (``ws.protocol_doc``), so a new code is added here or it does not exist.
"""

from __future__ import annotations

from enum import StrEnum

import asyncpg.exceptions
import redis.exceptions
import sqlalchemy.exc
from pydantic import ValidationError

from routing.errors import (
    ContactExistsError,
    InvalidStateError,
    OfferExpiredError,
    UnknownAgentError,
    UnknownContactError,
    UnsupportedLanguageError,
)


class ErrorCode(StrEnum):
    """Every ``code`` of an ``error`` frame (the docstring of each is its meaning)."""

    BAD_JSON = "bad_json"
    """The frame is not valid JSON."""
    BAD_FRAME = "bad_frame"
    """A binary frame (frames are JSON text), JSON nested over 32 levels deep, or text that
    cannot be stored or sent back (a NUL character, a lone UTF-16 surrogate)."""
    BAD_REQUEST = "bad_request"
    """Not a JSON object, or no ``type``."""
    BAD_FIELD = "bad_field"
    """A field is missing or invalid; the message names it."""
    UNKNOWN_TYPE = "unknown_type"
    """No message has this ``type``."""
    FRAME_TOO_LARGE = "frame_too_large"
    """Over the frame size limit."""
    UNAUTHENTICATED = "unauthenticated"
    """No ``hello`` first, or no valid cookie session or token."""
    FORBIDDEN = "forbidden"
    """Wrong role, or a contact that is not yours (audited)."""
    NOT_FOUND = "not_found"
    """No such offer or object for you."""
    CONFLICT = "conflict"
    """The request contradicts the contact's current situation."""
    INVALID_STATE = "invalid_state"
    """The contact or advisor is not in a state that allows this; the message names it."""
    ALREADY_STARTED = "already_started"
    """The customer already has a conversation in progress."""
    RESUME_EXPIRED = "resume_expired"
    """The resume token is unknown or expired."""
    WRONG_INSTANCE = "wrong_instance"
    """The contact's media lives on another, live instance: use the offer's ``media_url`` (a
    contact whose instance is gone is adopted by the one offered to instead)."""
    NO_CAPACITY = "no_capacity"
    """The advisor has no room on the richer channel."""
    RATE_LIMITED = "rate_limited"
    """Too many messages: this one was dropped (a flood is disconnected); or, for a guest, too
    many new conversations from one network: try again later."""
    UNAVAILABLE = "unavailable"
    """A service this needs (the database, Redis) is down; try again. When it happens while
    connecting, the socket then closes with 1013 (try again later): connect again."""
    BUSY = "busy"
    """The server has more of this work waiting than it takes on (a chat line: too many lines
    waiting to be stored); nothing was done: send it again, with the same id, a moment later."""
    ALREADY_PAUSED = "already_paused"
    """The contact's recording is paused already (one pause at a time)."""
    NOT_PAUSED = "not_paused"
    """The contact's recording is not paused (resumed, or its pause reached the limit)."""
    UNKNOWN_OUTCOME = "unknown_outcome"
    """A wrap-up outcome code that is not configured (``CC_WRAPUP_OUTCOMES``); the message
    lists the codes there are."""
    NOBODY_CAN_SERVE = "nobody_can_serve"
    """A transfer to a skill and language that no signed-in advisor (but you) has: refused
    unless sent again with ``queue_anyway`` (it would wait until such an advisor signs in)."""
    OFFER_EXPIRED = OfferExpiredError.code
    """The offer's deadline passed; the contact went back to the queue."""
    CONTACT_EXISTS = ContactExistsError.code
    """The contact is already queued, offered or assigned."""
    UNKNOWN_CONTACT = UnknownContactError.code
    """The router does not know this contact."""
    UNKNOWN_AGENT = UnknownAgentError.code
    """The router does not know this advisor."""
    UNSUPPORTED_LANGUAGE = UnsupportedLanguageError.code
    """A language the routing policy does not list."""
    INTERNAL = "internal"
    """Our fault (logged); the session is unaffected."""


#: Router errors a client's request can cause; any other is a server error.
CLIENT_ROUTING_ERRORS = (
    InvalidStateError,
    UnknownContactError,
    UnknownAgentError,
    UnsupportedLanguageError,
)
INTERNAL_MESSAGE = "something went wrong on our side; the session is unaffected"
DATABASE_DOWN_MESSAGE = "the database is not answering right now; try again in a moment"
REDIS_DOWN_MESSAGE = "Redis is not answering right now; try again in a moment"
SERVICE_DOWN_MESSAGE = "a service this needs is not answering right now; try again in a moment"


class ClientError(Exception):
    """Something the client asked for cannot be done; ``code`` is stable, the message human."""

    code: str = ErrorCode.BAD_REQUEST

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = code


class Forbidden(ClientError):
    code = ErrorCode.FORBIDDEN


class NotFound(ClientError):
    code = ErrorCode.NOT_FOUND


class Conflict(ClientError):
    code = ErrorCode.CONFLICT


class RateLimited(ClientError):
    code = ErrorCode.RATE_LIMITED


class Unavailable(ClientError):
    code = ErrorCode.UNAVAILABLE


class Busy(ClientError):
    code = ErrorCode.BUSY


def describe_validation(error: ValidationError) -> tuple[ErrorCode, str]:
    """(code, message) for a frame that does not match any message model."""
    first = error.errors()[0]
    loc = [str(part) for part in first.get("loc", ())]
    kind = first.get("type", "")
    if kind == "union_tag_invalid":
        return ErrorCode.UNKNOWN_TYPE, f"unknown message type; {first.get('msg', '')}"
    if kind == "union_tag_not_found":
        return ErrorCode.BAD_REQUEST, "every message needs a 'type' field"
    if kind == "json_invalid":
        return ErrorCode.BAD_JSON, "the frame is not valid JSON"
    if kind in ("model_attributes_type", "dict_type"):
        return ErrorCode.BAD_REQUEST, "a message must be a JSON object"
    # The first part of the location is the message type (the union's tag): not a field.
    field = ".".join(loc[1:]) if len(loc) > 1 else "".join(loc)
    return ErrorCode.BAD_FIELD, f"{field or 'message'}: {first.get('msg', 'invalid')}"


def service_down(exc: BaseException) -> str | None:
    """When ``exc`` says the database or Redis did not answer (stopped, restarting, the
    connection lost), the message for the client: the same request may succeed when tried
    again. None for any other error.

    The engine's pool pings a connection before lending it (``pool_pre_ping``) and opens new
    ones on demand, so once the database is back the next request simply works.
    """
    if isinstance(exc, sqlalchemy.exc.TimeoutError):  # no pool connection within the timeout
        return DATABASE_DOWN_MESSAGE
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and (
        exc.connection_invalidated
        or isinstance(exc, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError))
        or _connection_lost(exc.orig)
    ):
        return DATABASE_DOWN_MESSAGE
    if isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                        redis.exceptions.ClusterDownError)):
        return REDIS_DOWN_MESSAGE
    if isinstance(exc, ConnectionError):
        # refused, reset: the database driver lets a failed connect through unwrapped
        return SERVICE_DOWN_MESSAGE
    return None


def _connection_lost(error: BaseException | None) -> bool:
    # refused, reset; PostgreSQL's "connection exception" (SQLSTATE class 08: closed under the
    # query) and "operator intervention" (57: the server is stopping, starting up). SQLAlchemy's
    # asyncpg adapter re-raises asyncpg's errors as its own, keeping the SQLSTATE.
    if isinstance(error, (
        ConnectionError,
        asyncpg.exceptions.PostgresConnectionError,
        asyncpg.exceptions.OperatorInterventionError,
    )):
        return True
    sqlstate = getattr(error, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate[:2] in ("08", "57")


def is_client_caused(exc: Exception) -> bool:
    """True when the client's request explains the error; otherwise it is ours and is logged."""
    return isinstance(exc, (ClientError, ValidationError, *CLIENT_ROUTING_ERRORS))


def to_error(exc: Exception) -> tuple[str, str]:
    """Map any exception a handler raised to (code, message) for the client.

    The database or Redis not answering is ``unavailable`` (try again); anything else not
    caused by the client, an unexpected router error included, is answered ``internal`` with
    a generic message: its text is for the log, not for the client.
    """
    if isinstance(exc, ClientError):
        return exc.code, str(exc)
    if isinstance(exc, CLIENT_ROUTING_ERRORS):
        return exc.code, str(exc)
    if isinstance(exc, ValidationError):
        return describe_validation(exc)
    down = service_down(exc)
    if down is not None:
        return ErrorCode.UNAVAILABLE, down
    return ErrorCode.INTERNAL, INTERNAL_MESSAGE
