"""Exceptions raised by the router; Lua scripts return error codes that map onto these."""

from __future__ import annotations


class RoutingError(Exception):
    """Base class of every routing error; ``code`` is a stable machine-readable name."""

    code = "routing_error"


class PolicyError(RoutingError):
    """The routing policy file is missing, unreadable or invalid."""

    code = "policy_invalid"


class UnknownAgentError(RoutingError):
    """No agent with this id was ever upserted."""

    code = "unknown_agent"


class UnknownContactError(RoutingError):
    """No contact with this id is known (never enqueued, or purged after retention)."""

    code = "unknown_contact"


class InvalidStateError(RoutingError):
    """The operation is not allowed in the current state, which the message names."""

    code = "invalid_state"

    def __init__(self, message: str, *, state: str | None = None) -> None:
        super().__init__(message)
        self.state = state


class OfferExpiredError(InvalidStateError):
    """The offer's deadline passed before it was accepted; the contact went back to the queue."""

    code = "offer_expired"


class ContactExistsError(InvalidStateError):
    """A contact with this id is already queued, offered or assigned."""

    code = "contact_exists"


class UnsupportedLanguageError(RoutingError):
    """A language the policy does not list (language is never relaxed, so it must be known)."""

    code = "unsupported_language"


ERRORS_BY_CODE: dict[str, type[RoutingError]] = {
    cls.code: cls
    for cls in (
        RoutingError,
        PolicyError,
        UnknownAgentError,
        UnknownContactError,
        InvalidStateError,
        OfferExpiredError,
        ContactExistsError,
        UnsupportedLanguageError,
    )
}
