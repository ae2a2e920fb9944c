"""Errors a client can cause, each with a stable code, and the one mapper to error frames."""

from __future__ import annotations

from pydantic import ValidationError

from contact_center.lifecycle import InvalidTransition
from routing.errors import RoutingError


class ClientError(Exception):
    """Something the client asked for cannot be done; ``code`` is stable, the message human."""

    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = code


class Forbidden(ClientError):
    code = "forbidden"


class NotFound(ClientError):
    code = "not_found"


class Conflict(ClientError):
    code = "conflict"


class RateLimited(ClientError):
    code = "rate_limited"


class Unavailable(ClientError):
    code = "unavailable"


def describe_validation(error: ValidationError) -> tuple[str, str]:
    """(code, message) for a frame that does not match any message model."""
    first = error.errors()[0]
    loc = ".".join(str(part) for part in first.get("loc", ()))
    kind = first.get("type", "")
    if kind == "union_tag_invalid":
        return "unknown_type", f"unknown message type; {first.get('msg', '')}"
    if kind == "union_tag_not_found":
        return "bad_request", "every message needs a 'type' field"
    if kind == "json_invalid":
        return "bad_json", "the frame is not valid JSON"
    if kind == "model_attributes_type":
        return "bad_request", "a message must be a JSON object"
    field = loc.split(".", 1)[1] if "." in loc else loc
    return "bad_field", f"{field or 'message'}: {first.get('msg', 'invalid')}"


#: What a client may cause; anything else is our fault (logged, answered ``internal``).
CLIENT_CAUSED = (ClientError, InvalidTransition, RoutingError, ValidationError)


def to_error(exc: Exception) -> tuple[str, str]:
    """Map any exception a handler raised to (code, message) for the client."""
    if isinstance(exc, ClientError):
        return exc.code, str(exc)
    if isinstance(exc, InvalidTransition):
        return "invalid_state", str(exc)
    if isinstance(exc, RoutingError):
        return exc.code, str(exc)
    if isinstance(exc, ValidationError):
        return describe_validation(exc)
    return "internal", "something went wrong on our side; the session is unaffected"
