"""Group commit of chat lines: the lines that arrive while one transaction is being written
go together into the next one.

One writer task (started when a line arrives, ended when none waits) takes up to
``max_batch`` waiting lines, stores them in one transaction (``store.add_chat_messages``),
appends the new ones to their timelines and publishes every line to its parties, each in one
Redis round trip for the whole batch, and only then answers each line's caller. So a line is
acknowledged only once it is committed ("persisted before acknowledged"); a line whose
transaction or publication failed is answered with that error (a retry with its request id
gets the stored line, published again). Under light load a batch is one line and nothing
waits for company; under heavy load the batches grow, which is what keeps up.

Back-pressure: at most ``max_pending`` lines wait to be written, and no more than the
database, at its recent pace, commits within ``MAX_WAIT_S``; one more is refused at once with
``busy`` (nothing stored), never left to time out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from contact_center import metrics
from contact_center.bus import Bus
from contact_center.contacts import store
from contact_center.contacts.recording import Recordings, TimelineEntry
from contact_center.contacts.store import NewChatLine, StoredChatLine
from contact_center.db.models import Contact
from contact_center.errors import Busy
from contact_center.protocol import ChatMessage as ChatMessageFrame

log = logging.getLogger(__name__)

MAX_BATCH = 256
DEFAULT_MAX_PENDING = 1000
#: a line that would wait longer than this for the database (by its recent pace) is refused
#: ``busy`` at once rather than answered late (clients give up on a request after 10 s)
MAX_WAIT_S = 2.0
SMOOTHING = 0.2


@dataclass
class _Pending:
    line: NewChatLine
    recipients: tuple[str, ...] | None  # None: the parties of the contact as stored
    sender_name: str | None
    answer: asyncio.Future[tuple[StoredChatLine, bool]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class ChatWriter:
    """Stores chat lines in batches and delivers them once committed (see the module)."""

    def __init__(
        self,
        db: async_sessionmaker[AsyncSession],
        recordings: Recordings,
        bus: Bus,
        parties: Callable[[Contact], list[str]],
        *,
        max_pending: int = DEFAULT_MAX_PENDING,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self.db, self.recordings, self.bus, self.parties = db, recordings, bus, parties
        self.max_pending, self.max_batch = max_pending, max_batch
        self._waiting: deque[_Pending] = deque()
        self._writer: asyncio.Task[None] | None = None
        self._announcer: asyncio.Task[None] | None = None  # the last batch's
        #: how long a batch took the database lately (a moving average)
        self._batch_seconds = 0.0
        self._writing = False  # a batch is in the database now

    @property
    def waiting(self) -> int:
        """Lines waiting for a transaction (not those being written)."""
        return len(self._waiting)

    async def write(
        self,
        line: NewChatLine,
        *,
        recipients: Sequence[str] | None = None,
        sender_name: str | None = None,
    ) -> tuple[StoredChatLine, bool]:
        """Store ``line``, add it to the timeline and publish it to ``recipients`` (by default
        the contact's parties as its transaction read them, which needs ``line.admit``);
        returns (the stored line, whether it is new: a retry of a stored request id is not).
        Raises what ``line.admit`` refused it with."""
        if recipients is None and line.admit is None:
            raise ValueError("a line without admit needs its recipients")
        if (
            len(self._waiting) >= self.max_pending
            or self._expected_wait() > MAX_WAIT_S
        ):
            raise Busy(
                f"the server has {len(self._waiting)} chat lines waiting to be stored; "
                "send this one again in a moment (same id)"
            )
        pending = _Pending(line, tuple(recipients) if recipients else None, sender_name)
        self._waiting.append(pending)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="chat-writer")
        # A cancelled caller (its socket gone) does not cancel the write: the line is stored
        # and delivered all the same, only not acknowledged.
        return await asyncio.shield(pending.answer)

    def _expected_wait(self) -> float:
        """How long one more line would wait for its commit: the batch being written and one
        batch per ``max_batch`` lines ahead of it, then its own, each as long as batches took
        lately (a batch costs mostly its round trips and commit, not its lines). Nothing ahead
        is no wait: a line alone is always taken (so one slow commit cannot refuse them all
        for good: the pace is learnt only from batches written)."""
        ahead = -(-len(self._waiting) // self.max_batch) + self._writing
        return (ahead + 1) * self._batch_seconds if ahead else 0.0

    async def close(self) -> None:
        """Wait for the lines already taken to be written and announced (at shutdown)."""
        if self._writer is not None:
            await self._writer
        if self._announcer is not None:
            await self._announcer

    async def _drain(self) -> None:
        """Batch after batch into the database; each committed batch is announced by a task of
        its own, after the one before it (lines reach their parties in order), while the next
        batch is being written: the two round trips to Redis are not in the database's way."""
        while self._waiting:
            count = min(len(self._waiting), self.max_batch)
            batch = [self._waiting.popleft() for _ in range(count)]
            metrics.CHAT_BATCH.observe(count)
            started = time.monotonic()
            self._writing = True
            try:
                outcomes, contacts = await store.add_chat_messages(self.db, [p.line for p in batch])
            except Exception as exc:  # each caller reports it; the writer goes on
                for pending in batch:
                    _answer(pending, exc)
                continue
            finally:
                self._writing = False
            elapsed = time.monotonic() - started
            self._batch_seconds += (elapsed - self._batch_seconds) * SMOOTHING
            self._announcer = asyncio.create_task(
                self._announce_after(self._announcer, batch, outcomes, contacts),
                name="chat-announce",
            )

    async def _announce_after(
        self,
        before: asyncio.Task[None] | None,
        batch: list[_Pending],
        outcomes: list[store.ChatOutcome],
        contacts: dict[str, Contact],
    ) -> None:
        if before is not None:
            await asyncio.wait([before])  # its failure is its lines' callers' to report
        stored = [
            (pending, outcome)
            for pending, outcome in zip(batch, outcomes, strict=True)
            if not isinstance(outcome, Exception)
        ]
        try:
            await self._announce(stored, contacts)
        except Exception as exc:  # stored, not delivered: a retry delivers it
            outcomes = [o if isinstance(o, Exception) else exc for o in outcomes]
        for pending, outcome in zip(batch, outcomes, strict=True):
            _answer(pending, outcome)

    async def _announce(
        self,
        stored: list[tuple[_Pending, tuple[StoredChatLine, bool]]],
        contacts: dict[str, Contact],
    ) -> None:
        """The committed batch: new lines to their timelines, every line to its parties (a
        retry too: clients place lines by seq, so it is shown once)."""
        await self.recordings.add_many(
            [
                TimelineEntry(
                    message.contact_id,
                    "chat",
                    message.at,
                    {
                        "chat_seq": message.seq,
                        "sender": message.sender_role,
                        "sender_ref": message.sender_ref,
                        "text": message.text,
                    },
                )
                for _pending, (message, new) in stored
                if new
            ]
        )
        frames = []
        for pending, (message, _new) in stored:
            advisor = message.sender_role == "advisor"
            frame = ChatMessageFrame(
                contact_id=message.contact_id,
                seq=message.seq,
                sender=message.sender_role,
                text=message.text,
                at=message.at,
                sender_name=pending.sender_name if advisor else None,
                sender_ref=message.sender_ref if advisor else None,
            )
            recipients = pending.recipients or self.parties(contacts[message.contact_id])
            frames.append((recipients, frame.model_dump_json()))
        await self.bus.publish_frames(frames)


def _answer(pending: _Pending, outcome: store.ChatOutcome) -> None:
    if pending.answer.done():  # its caller was cancelled
        return
    if isinstance(outcome, Exception):
        pending.answer.set_exception(outcome)
    else:
        pending.answer.set_result(outcome)
