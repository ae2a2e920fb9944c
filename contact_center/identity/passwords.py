"""Password hashing with argon2id, and the bounded pool that runs it off the event loop."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
# Compared against when the user does not exist, so that the reply takes as long either way.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


class Verifier(Protocol):
    def verify(self, hash: str, password: str) -> bool: ...  # noqa: A002 - argon2's name


class HashingBusy(Exception):
    """Too many password checks are already waiting: the caller should answer 503."""


class PasswordChecks:
    """argon2id in worker threads of its own: ``concurrency`` at once, ``max_pending`` in all.

    A check is ~100-200 ms of CPU: on the event loop, a few failed sign-ins a second from
    anyone would stall every page and WebSocket. argon2's C code releases the GIL, so a thread
    keeps the loop free; a pool of its own keeps a burst from taking every core (or the
    loop's default executor, which other work needs).
    """

    def __init__(self, *, concurrency: int, max_pending: int, hasher: Verifier = _hasher) -> None:
        self.hasher = hasher
        self.concurrency = concurrency
        self.max_pending = max_pending
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="argon2")
        self._pending = 0

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether ``password`` matches; with no hash, a dummy one is checked (same cost)."""
        if self._pending >= self.max_pending:
            raise HashingBusy("too many sign-ins are being checked; try again in a moment")
        self._pending += 1
        try:
            # Cancelled while queued, the job is dropped; once running it finishes in its slot.
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, self._check, password_hash, password)
        finally:
            self._pending -= 1

    def _check(self, password_hash: str | None, password: str) -> bool:
        try:
            matched = self.hasher.verify(password_hash or _DUMMY_HASH, password)
        except (VerificationError, InvalidHashError):
            return False
        return bool(matched) and password_hash is not None

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
