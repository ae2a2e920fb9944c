"""The access grant: a signed, short-lived token tying a case's reason to the contacts it covers.

An officer gives the reason for a case once; the server signs a grant holding the reason, the
officer's identity, the contacts opened so far and an expiry, and every compliance request
carries it (``X-Compliance-Grant``, or ``?grant=`` where a browser cannot set a header: media
elements and downloads). Each access is audited with the grant's reason and id. Opening another
contact re-signs the grant with that contact added (same id, reason and expiry), so the reason
is never typed again for the case, and the audit trail shows which contacts the case took in.

Format: ``g1.<payload>.<mac>``, the payload compact JSON in base64url, the mac HMAC-SHA256 of
``g1.<payload>`` with a key derived from the server secret (``key_from_secret``). Stateless:
any instance checks a grant with the shared secret, and nothing is stored until it is used.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass, field, replace
from typing import Any

from contact_center.compliance.fulltext import CJK

VERSION = "g1"
DEFAULT_TTL_S = 30 * 60
MAX_REASON_CHARS = 500
MAX_CONTACTS = 100
_CONTACT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_LATIN_WORD = re.compile(rf"[^\W\d_{CJK}]{{2,}}")
_CJK_CHAR = re.compile(f"[{CJK}]")


class GrantError(Exception):
    """The request's grant is missing, broken, expired, someone else's or does not cover it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def reason_problem(reason: str) -> str | None:
    """Why ``reason`` is not enough for a case (None when it is).

    "At least a few words": three words of two letters or more, where two Chinese characters
    count as a word (Chinese has no spaces between words), and ten characters in all.
    """
    text = " ".join(reason.split())
    if len(text) > MAX_REASON_CHARS:
        return f"the reason is longer than {MAX_REASON_CHARS} characters"
    words = len(_LATIN_WORD.findall(text)) + len(_CJK_CHAR.findall(text)) / 2
    if words < 3 or len(text) < 10:
        return "give the reason for this case in a few words (for example its reference and why)"
    return None


def key_from_secret(secret: str) -> bytes:
    """A key of its own for grants, derived from the server secret."""
    return hashlib.sha256(b"compliance-grant:" + secret.encode()).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, signed: str) -> str:
    return _b64(hmac.new(key, signed.encode(), hashlib.sha256).digest())


@dataclass(frozen=True, slots=True)
class Grant:
    """What a grant says: whose it is, why, which contacts, until when (Unix seconds)."""

    id: str
    subject: str  # the identity's ref, e.g. "user:7"
    reason: str
    issued_at: int
    expires_at: int
    contacts: tuple[str, ...] = field(default_factory=tuple)

    def covers(self, contact_id: str) -> bool:
        return contact_id in self.contacts

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "reason": self.reason,
            "contacts": list(self.contacts),
            "issued_at": self.issued_at,
            "expires_at": self.expires_at,
        }


def _check_contacts(contacts: tuple[str, ...]) -> tuple[str, ...]:
    for contact_id in contacts:
        if not _CONTACT_ID.match(contact_id):
            raise GrantError("bad_contact", f"{contact_id[:80]!r} is not a contact id")
    unique = tuple(dict.fromkeys(contacts))
    if len(unique) > MAX_CONTACTS:
        raise GrantError(
            "too_many_contacts", f"a case covers at most {MAX_CONTACTS} contacts: start another"
        )
    return unique


def issue(
    subject: str,
    reason: str,
    contacts: tuple[str, ...] = (),
    *,
    ttl_s: int = DEFAULT_TTL_S,
    now: float | None = None,
) -> Grant:
    """A new grant (a new case id); ``GrantError`` for a reason that is not enough."""
    problem = reason_problem(reason)
    if problem:
        raise GrantError("reason_required", problem)
    at = int(now if now is not None else time.time())
    return Grant(
        id=secrets.token_hex(8),
        subject=subject,
        reason=" ".join(reason.split()),
        issued_at=at,
        expires_at=at + ttl_s,
        contacts=_check_contacts(tuple(contacts)),
    )


def extend(grant: Grant, contacts: tuple[str, ...]) -> Grant:
    """The same grant (id, reason, expiry) covering ``contacts`` as well."""
    return replace(grant, contacts=_check_contacts(grant.contacts + tuple(contacts)))


def sign(grant: Grant, key: bytes) -> str:
    payload = {
        "id": grant.id,
        "sub": grant.subject,
        "why": grant.reason,
        "iat": grant.issued_at,
        "exp": grant.expires_at,
        "c": list(grant.contacts),
    }
    body = _b64(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())
    signed = f"{VERSION}.{body}"
    return f"{signed}.{_mac(key, signed)}"


def verify(token: str | None, key: bytes, *, subject: str, now: float | None = None) -> Grant:
    """The grant ``token`` carries, if it is sound, unexpired and ``subject``'s."""
    if not token:
        raise GrantError("reason_required", "give the reason for this case first")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != VERSION or len(token) > 8192:
        raise GrantError("bad_grant", "the access grant is not one of ours")
    signed = f"{parts[0]}.{parts[1]}"
    if not hmac.compare_digest(_mac(key, signed), parts[2]):
        raise GrantError("bad_grant", "the access grant is not one of ours")
    try:
        payload = json.loads(_unb64(parts[1]))
        grant = Grant(
            id=str(payload["id"]),
            subject=str(payload["sub"]),
            reason=str(payload["why"]),
            issued_at=int(payload["iat"]),
            expires_at=int(payload["exp"]),
            contacts=tuple(str(c) for c in payload["c"]),
        )
    except (ValueError, KeyError, TypeError):
        raise GrantError("bad_grant", "the access grant is not one of ours") from None
    if grant.subject != subject:
        raise GrantError("bad_grant", "this access grant was given to someone else")
    if (now if now is not None else time.time()) >= grant.expires_at:
        raise GrantError("grant_expired", "the access grant for this case expired: confirm it")
    return grant


def require_contact(grant: Grant, contact_id: str) -> None:
    if not grant.covers(contact_id):
        raise GrantError(
            "not_in_grant", f"contact {contact_id} is not part of this case: open it from the case"
        )
