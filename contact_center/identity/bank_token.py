"""Signed customer identity from the bank's app: an HS256 JWT signed with a secret shared with
the bank (``CC_BANK_TOKEN_SECRET``), short-lived and used once, stands in for a password.

Claims (README, *Signed customer identity*): ``sub`` the bank's customer id, ``name`` the display
name, ``vip`` (bool), ``lang`` (``en``, ``zh`` or ``yue``), ``exp`` (at most
``CC_BANK_TOKEN_MAX_AGE_S`` ahead), ``jti`` (unique per token); ``iat`` and ``nbf`` are checked
when present. A token's ``jti`` is kept in Redis until its ``exp``: the same token twice is a
replay. A valid token signs the customer in to an account of their own here (``bank:<sub>``,
kept up to date from each token, with no password), with a server-side session like any other.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

import jwt
import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from contact_center import redis_keys
from contact_center.db.engine import transaction
from contact_center.db.models import Role, User
from contact_center.errors import ClientError
from contact_center.identity.users import get_user_by_username

ALGORITHM = "HS256"
#: Clock difference between the bank's servers and ours that is forgiven, in seconds.
LEEWAY_S = 10
MAX_TOKEN_CHARS = 4096
#: Bank customers' usernames start so: no account made here can (":" is refused for those).
USERNAME_PREFIX = "bank:"
#: The page language (``<html lang>``, which i18n.js reads) for each preferred language.
PAGE_LANGUAGE = {"en": "en", "zh": "zh-Hans", "yue": "zh-Hant-HK"}
#: Not an argon2 hash: no password ever matches it, so the account signs in by token only.
NO_PASSWORD = "!bank-token-only"


class BankTokenError(ClientError):
    """A token that does not sign anyone in; ``code`` says why, the message how to fix it."""

    status = 401

    def __init__(self, code: str, message: str, *, status: int = 401) -> None:
        super().__init__(message, code=code)
        self.status = status


class BankClaims(BaseModel):
    """What the bank says about its customer (extra claims are ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    sub: Annotated[str, Field(min_length=1, max_length=59, pattern=r"^[A-Za-z0-9_.@-]+$")]
    """The bank's customer id (letters, digits, ``_ . @ -``; up to 59)."""
    name: Annotated[str, Field(min_length=1, max_length=128)]
    vip: StrictBool = False
    lang: Literal["en", "zh", "yue"] = "en"
    exp: int
    jti: Annotated[str, Field(min_length=8, max_length=128)]
    iat: int | None = None


def _claims_message(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "token"
    return f"claim {where!r}: {first['msg']}"


class BankTokenVerifier:
    """Checks tokens (signature, times, claims) and that each is used only once."""

    def __init__(self, redis: aioredis.Redis, *, secret: str, max_age_s: int) -> None:
        self._redis = redis
        self._secret = secret
        self.max_age_s = max_age_s

    def decode(self, token: str, *, now: float | None = None) -> BankClaims:
        """The claims of a well-signed, current, short-lived token; BankTokenError if not."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            raise BankTokenError("token_malformed", "the token is empty or too long", status=400)
        now = time.time() if now is None else now
        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                leeway=LEEWAY_S,
                options={"require": ["exp", "jti", "sub"], "verify_exp": False},
            )
        except jwt.InvalidAlgorithmError:
            raise BankTokenError(
                "token_bad_algorithm", f"only {ALGORITHM} tokens are accepted"
            ) from None
        except jwt.InvalidSignatureError:
            raise BankTokenError(
                "token_bad_signature",
                "the signature does not match: the token was not signed with the shared secret",
            ) from None
        except jwt.MissingRequiredClaimError as exc:
            raise BankTokenError("token_bad_claims", f"the claim {exc.claim!r} is missing") from None
        except jwt.ImmatureSignatureError:
            raise BankTokenError("token_not_yet_valid", "the token is not valid yet (iat or nbf)") from None
        except jwt.DecodeError:
            raise BankTokenError("token_malformed", "this is not a signed JWT", status=400) from None
        except jwt.InvalidTokenError as exc:
            raise BankTokenError("token_bad_claims", str(exc)) from None
        try:
            claims = BankClaims.model_validate(payload)
        except ValidationError as exc:
            raise BankTokenError("token_bad_claims", _claims_message(exc)) from None
        if claims.exp + LEEWAY_S <= now:
            raise BankTokenError(
                "token_expired", "the token has expired: ask the bank's app for a new one"
            )
        if claims.exp - now > self.max_age_s + LEEWAY_S:
            raise BankTokenError(
                "token_too_long_lived",
                f"the token is valid for {int(claims.exp - now)} s; at most {self.max_age_s} s "
                "are accepted",
            )
        return claims

    async def verify(self, token: str, *, now: float | None = None) -> BankClaims:
        """``decode``, then spend the token: a second use is a replay. Only a token that passed
        every other check is spent, so a bad one cannot use up a good one's id."""
        claims = self.decode(token, now=now)
        fresh = await self._redis.set(
            redis_keys.bank_token_seen(claims.jti), claims.sub, nx=True,
            exat=claims.exp + LEEWAY_S + 1,
        )
        if not fresh:
            raise BankTokenError(
                "token_replayed", "this token was already used: each token signs in once"
            )
        return claims


async def bank_customer(factory: async_sessionmaker[AsyncSession], claims: BankClaims) -> User:
    """The account of the bank's customer here, created or brought up to date from the token."""
    username = USERNAME_PREFIX + claims.sub
    for _attempt in range(2):
        try:
            async with transaction(factory) as session:
                user = await get_user_by_username(session, username=username)
                if user is None:
                    user = User(
                        username=username, password_hash=NO_PASSWORD, role=Role.CUSTOMER,
                        display_name=claims.name, languages=[claims.lang], vip=claims.vip,
                    )
                elif user.role != Role.CUSTOMER:
                    raise BankTokenError(
                        "token_bad_account", "this id belongs to a staff account", status=403
                    )
                elif user.disabled:
                    raise BankTokenError(
                        "token_account_disabled",
                        "this customer's access is disabled here; call the bank",
                        status=403,
                    )
                else:
                    user.display_name, user.vip, user.languages = (
                        claims.name, claims.vip, [claims.lang],
                    )
                session.add(user)
                await session.flush()
                await session.refresh(user)
                return user
        except IntegrityError:
            continue  # the same customer's first two tokens at once: the other made the account
    raise RuntimeError(f"could not create the account of bank customer {claims.sub}")
