"""Every contact's recording on the server: its timeline, its media recorder, pauses, failures.

**One ordered timeline per contact, whatever instance handles each event.** An event (a state
change with its actor, a chat line, a bot turn, a routing decision, a file opened...) is written
by the instance that handles it, but not to the file: it is appended (``XADD``), masked, to the
contact's Redis stream ``redis_keys.timeline(id)``. Redis gives each entry an id that increases
with every append, from any instance, so the stream *is* the contact's order: one sequencer,
no clocks to compare. Only one process writes ``timeline.jsonl``: the *owner*, the instance
of the contact (``Contact.instance``: where it started, unless adopted since), which holds the
contact's claim (``recordings.claim``) and, as the contact's media lives there, also writes its
media files. The owner copies the
stream into the file in stream order: within moments for what it appends itself (``add`` starts
a drain in the background, so that a request waits for one Redis round trip, not for the
disk), and for what other instances append through one blocking ``XREAD`` over the streams of
its open contacts (``run``). So each line's ``seq`` follows the stream, and the line also carries
``sid`` (the stream id as ``[milliseconds, sequence]``: numbers, which the card-number masking
leaves alone), ``instance`` (who handled the event) and ``t`` (that instance's time of the
event). An event is appended before anyone is told of it (the bus), so what a party
did in answer to an event is always after it in the timeline. A reader needs no sorting: the
file's order is ``seq``'s is the stream's (``t`` may step back a little from one line to the
next: two instances' clocks, or an event timed just before a slow append). Should the owner
die, what it had not copied stays in the stream (a week). If the contact goes on, the instance
that adopts it (``contacts.adoption``: the restarted server, the one a party offers media to,
or the one that takes the dead lease over) goes on writing the same directory from where the
file stopped, and seals it ``incomplete`` in the end (the media of the moments between is
missing); a clean stop hands its contacts over instead (``shutdown``: a ``handover`` line, and
the recording may still be ``complete``). If the contact is over, the next start on the
machine copies the rest of the stream before sealing the recording ``incomplete`` (``sweep``).

The owner also acts on what it copies: a ``pause``/``resume`` line pauses or resumes its
recorder (the request may have come to another instance), leaving ``connected`` closes the
call's media here, and a final state (``ended``, ``abandoned``) seals the recording
(``sealing.seal``). A recorder or timeline that fails is never silent (``failure``): the
contact is flagged in the database, the failure goes to the timeline (or, when the timeline
itself cannot be written, to the database and the log), ``cc_recorder_failures_total`` counts
it and a supervisor alarm is raised (``alarms``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from prometheus_client import Counter
from redis.exceptions import RedisError
from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from contact_center import redis_keys
from contact_center.background import stop_tasks
from contact_center.contacts import alarms, store
from contact_center.contacts.states import FINAL_STATES, ContactState
from contact_center.db.engine import transaction
from contact_center.db.models import Contact, ContactEvent
from contact_center.media.call import CallMedia, MediaHub
from recordings.claim import Claim, ClaimHeld, unsealed
from recordings.recorder import RecorderEvent
from recordings.redact import mask_fields
from recordings.retention import DEFAULT_POLICY, RetentionPolicy
from recordings.timeline import (
    RESERVED,
    TimelineSealed,
    TimelineWriter,
    format_time,
    read_timeline,
)

if TYPE_CHECKING:
    from contact_center.contacts.sealing import Uploader

log = logging.getLogger(__name__)

RECORDER_FAILURES = Counter(
    "cc_recorder_failures_total",
    "Recorder and timeline failures (a file that could not be opened or written, a timeline "
    "that could not be written, a seal or upload that failed), by stage",
    ["stage"],
)

#: A stream outlives its contact's seal only by accident (an event after the end): it expires.
STREAM_TTL_S = 7 * 24 * 3600
DRAIN_BATCH = 200
READ_BLOCK_MS = 500
#: How long ``adopt`` waits for a stopping instance to let go of a claim: 40 × 0.5 s.
ADOPT_CLAIM_TRIES = 40
ADOPT_CLAIM_WAIT_S = 0.5
#: The last line of a timeline whose instance stopped cleanly during the contact.
HANDOVER = "handover"
READ_GATHER_S = 0.01
#: timeline entries written from the event loop itself; more go to a thread
INLINE_WRITE = 16
#: Fields the recordings add to every line (besides the timeline's own ``t``, ``seq``, ``kind``).
ADDED = frozenset({"sid", "instance"})


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def describe(error: BaseException | str) -> str:
    return error if isinstance(error, str) else f"{type(error).__name__}: {error}"


@dataclass(frozen=True)
class TimelineEntry:
    """One event to append to a contact's timeline (``at``: now when None)."""

    contact_id: str
    kind: str
    at: datetime | None
    fields: dict[str, Any]


@dataclass
class Entry:
    """One stream entry, as the owner writes it."""

    sid: str
    kind: str
    at: datetime
    instance: str
    fields: dict[str, Any]


@dataclass
class OpenRecording:
    """What the owner holds of one contact it records."""

    contact_id: str
    claim: Claim
    writer: TimelineWriter | None = None
    last_sid: str | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pause_id: str | None = None
    pause_timer: asyncio.Task[None] | None = None
    open_error: BaseException | None = None
    timeline_failed: bool = False
    sealing: bool = False
    closed: bool = False
    dirty: bool = False  # appended to since the last drain began
    #: the instance that recorded it before died mid-contact (``adopt``): sealed incomplete
    interrupted: bool = False
    drainer: asyncio.Task[None] | None = None

    @property
    def directory(self) -> Path:
        return self.claim.directory


class Recordings:
    """The recordings of this instance's contacts (``ContactCore.recordings``).

    ``root`` None disables recording: ``add`` and the rest do nothing.
    """

    def __init__(
        self,
        *,
        db: async_sessionmaker[AsyncSession],
        redis: aioredis.Redis,
        media: MediaHub,
        instance_id: str,
        root: Path | None,
        policy: RetentionPolicy = DEFAULT_POLICY,
        pause_limit_s: float = 120.0,
    ) -> None:
        self.db = db
        self.redis = redis
        self.media = media
        self.instance_id = instance_id
        self.root = Path(root) if root is not None else None
        self.policy = policy
        self.pause_limit_s = pause_limit_s
        self.uploader: Uploader | None = None
        #: Called on the owner when a pause reached its limit: ``(contact_id, pause_id)``.
        self.on_pause_expired: Callable[[str, str], Awaitable[None]] | None = None
        #: Called by ``sweep`` for a recording left unsealed by a dead owner: moves its contact
        #: to this instance when it is still going on (True), so it is recorded on, not sealed.
        self.adopt_orphan: Callable[[str], Awaitable[bool]] | None = None
        self._open: dict[str, OpenRecording] = {}
        self._unclaimed: dict[str, BaseException] = {}
        self._reported: set[tuple[str, ...]] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._wake = asyncio.Event()
        #: contacts whose streams ``run`` reads (its reads take what is appended to them)
        self._reading: set[str] = set()

    @property
    def enabled(self) -> bool:
        return self.root is not None

    def owns(self, contact_id: str) -> bool:
        """Whether this instance writes ``contact_id``'s recording."""
        return contact_id in self._open

    def directory(self, contact_id: str) -> Path:
        assert self.root is not None
        return self.root / contact_id

    def _spawn(self, work: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------ owning a contact

    async def open(self, contact_id: str) -> None:
        """This instance records ``contact_id`` (a contact created here, not yet in the
        database): claim its directory and start its timeline. A failure is kept and reported
        by ``started`` once the contact exists."""
        if self.root is None or contact_id in self._open:
            return
        try:
            claim = await asyncio.to_thread(Claim.take, self.root, contact_id)
        except (ClaimHeld, OSError) as error:
            log.error("recording of contact %s cannot be claimed: %s", contact_id, error)
            self._unclaimed[contact_id] = error  # reported once the contact exists
            return
        recording = OpenRecording(contact_id, claim)
        self._open[contact_id] = recording
        try:
            recording.writer = await asyncio.to_thread(TimelineWriter, claim.directory)
        except OSError as error:
            recording.open_error = error
            recording.timeline_failed = True
        self._wake.set()

    async def adopt(self, contact_id: str, claim: Claim | None = None) -> bool:
        """Record here a contact whose owner is gone (its media and timeline moved here): go on
        in its directory when this machine has it and nobody claims it, else start one. The
        stream holds what the owner had not copied, so the file goes on from where it stopped;
        a pause that was open stays open. False when it cannot be claimed (reported)."""
        if self.root is None or contact_id in self._open:
            if claim is not None:
                claim.release()
            return self.root is not None
        if claim is None:
            try:
                claim = await self._claim_handed_over(contact_id)
            except (ClaimHeld, OSError) as error:
                await self.failure(contact_id, stage="adopt", error=error, what="claim")
                return False
        recording = OpenRecording(contact_id, claim)
        events = await self._reopen(recording)
        # a clean stop wrote ``handover`` last; anything else is an instance that died
        recording.interrupted = not events or events[-1].get("kind") != HANDOVER
        self._open[contact_id] = recording
        for event in events:  # the pause state the file left off in
            if event.get("kind") in ("pause", "resume"):
                self._act_on(recording, self._decode_line(event))
        log.warning("recording of contact %s goes on here (its instance is gone)", contact_id)
        self._wake.set()
        self._kick(contact_id)
        return True

    async def _claim_handed_over(self, contact_id: str) -> Claim:
        """The claim of a contact whose instance is stopping here: it may still be handing the
        directory over (``shutdown``), so a held claim is asked for again for a while."""
        assert self.root is not None
        for _ in range(ADOPT_CLAIM_TRIES - 1):
            try:
                return await asyncio.to_thread(Claim.take, self.root, contact_id)
            except ClaimHeld:
                await asyncio.sleep(ADOPT_CLAIM_WAIT_S)
        return await asyncio.to_thread(Claim.take, self.root, contact_id)

    async def _reopen(self, recording: OpenRecording) -> list[dict[str, Any]]:
        """Open the timeline of a directory written before (a dead owner's) to append to it;
        its events, or [] when it cannot be read (the recording is then flagged failed)."""
        directory = recording.directory
        try:
            recording.writer = await asyncio.to_thread(TimelineWriter, directory)
            found = await asyncio.to_thread(read_timeline, directory)
        except (OSError, TimelineSealed) as error:
            recording.timeline_failed = True
            log.error("recording of %s: timeline unreadable: %s", recording.contact_id, error)
            if not recording.sealing:
                self._spawn(
                    self.failure(recording.contact_id, stage="timeline", error=error),
                    f"timeline failure {recording.contact_id}",
                )
            return []
        sids = [s for e in found.events if (s := sid_text(e.get("sid")))]
        recording.last_sid = sids[-1] if sids else None
        return found.events

    @staticmethod
    def _decode_line(event: dict[str, Any]) -> Entry:
        """A timeline line back as the entry it was written from."""
        fields = {k: v for k, v in event.items() if k not in RESERVED | ADDED}
        at = _parse_time(event.get("t")) or _now()
        return Entry(
            sid=sid_text(event.get("sid")) or "",
            kind=str(event.get("kind")),
            at=at,
            instance=str(event.get("instance", "")),
            fields=fields,
        )

    async def started(self, contact_id: str) -> None:
        """The contact is in the database: report what ``open`` could not do."""
        unclaimed = self._unclaimed.pop(contact_id, None)
        if unclaimed is not None:
            await self.failure(contact_id, stage="open", error=unclaimed, what="claim")
        recording = self._open.get(contact_id)
        if recording is not None and recording.open_error is not None:
            error, recording.open_error = recording.open_error, None
            await self.failure(contact_id, stage="timeline", error=error)

    async def discard(self, contact_id: str) -> None:
        """``open`` was for nothing (the contact was not created): undo it."""
        self._unclaimed.pop(contact_id, None)
        recording = self._open.pop(contact_id, None)
        if recording is None:
            return
        if recording.writer is not None:
            recording.writer.close()
        with contextlib.suppress(OSError):
            (recording.directory / "timeline.jsonl").unlink()
            recording.directory.rmdir()
        recording.claim.release()

    # ------------------------------------------------------------------ the timeline

    async def add(
        self, contact_id: str, kind: str, /, *, at: datetime | None = None, **fields: Any
    ) -> None:
        """Append one event to ``contact_id``'s timeline (from any instance); never raises for
        a Redis or disk failure, which is reported instead."""
        await self.add_many([TimelineEntry(contact_id, kind, at, fields)])

    async def add_many(self, entries: Sequence[TimelineEntry]) -> None:
        """Append events to their contacts' timelines in order, in one Redis round trip; as
        ``add``, never raises for a Redis or disk failure."""
        if self.root is None or not entries:
            return
        for entry in entries:
            clash = (RESERVED | ADDED) & set(entry.fields)
            if clash:
                raise ValueError(f"reserved timeline field(s): {', '.join(sorted(clash))}")
        contact_ids = list(dict.fromkeys(entry.contact_id for entry in entries))
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for entry in entries:
                    pipe.xadd(redis_keys.timeline(entry.contact_id), self._encode(entry))  # type: ignore[arg-type]
                for contact_id in contact_ids:
                    pipe.expire(redis_keys.timeline(contact_id), STREAM_TTL_S)
                await pipe.execute()
        except RedisError as error:
            for entry in entries:
                await self.failure(entry.contact_id, stage="timeline", error=error, lost=entry.kind)
            return
        for contact_id in contact_ids:
            self._kick(contact_id)

    def _encode(self, entry: TimelineEntry) -> dict[str, str]:
        return {
            "k": entry.kind,
            "t": format_time(_aware(entry.at or _now())),
            "i": self.instance_id,
            "f": json.dumps(mask_fields(entry.fields), ensure_ascii=False, default=str),
        }

    def _kick(self, contact_id: str) -> None:
        """Owner: drain soon (one drain task at a time per contact, re-run while appended to)."""
        recording = self._open.get(contact_id)
        if recording is None or recording.closed or contact_id in self._reading:
            return  # ``run``'s read of the stream returns it without asking again
        recording.dirty = True
        if recording.drainer is None or recording.drainer.done():
            recording.drainer = self._spawn(self._drain_soon(recording), f"drain {contact_id}")

    async def _drain_soon(self, recording: OpenRecording) -> None:
        while recording.dirty and not recording.closed:
            recording.dirty = False
            await self.drain(recording.contact_id)

    async def add_event(self, event: ContactEvent) -> None:
        """A contact event row (a state change with its actor...) as a timeline ``event``."""
        await self.add(
            event.contact_id,
            "event",
            at=event.at,
            event=event.kind,
            actor=event.actor,
            data=event.data,
            **{"from": event.from_state, "to": event.to_state},
        )

    async def drain(self, contact_id: str) -> None:
        """Owner: copy what the contact's stream holds beyond the file into the file."""
        recording = self._open.get(contact_id)
        if recording is None:
            return
        failed: BaseException | None = None
        async with recording.lock:
            while not recording.closed:
                start = f"({recording.last_sid}" if recording.last_sid else "-"
                found: Any
                try:
                    found = await self.redis.xrange(
                        redis_keys.timeline(contact_id), min=start, count=DRAIN_BATCH
                    )
                except RedisError:
                    log.warning("timeline of %s: Redis failed, retrying later", contact_id)
                    break
                if not found:
                    break
                failed = await self._take(recording, found) or failed
                if len(found) < DRAIN_BATCH:
                    break
        self._report_later(contact_id, failed)

    async def _take_read(self, contact_id: str, found: list[Any]) -> None:
        """Owner: what an ``XREAD`` returned for the contact's stream, into the file, without
        reading it again (what a drain took meanwhile is skipped); a full read is drained."""
        recording = self._open.get(contact_id)
        if recording is None:
            return
        if len(found) >= DRAIN_BATCH:
            await self.drain(contact_id)
            return
        failed: BaseException | None = None
        async with recording.lock:
            if not recording.closed:
                last = sid_pair(recording.last_sid) if recording.last_sid else [-1, -1]
                fresh = [(sid, values) for sid, values in found if sid_pair(sid) > last]
                if fresh:
                    failed = await self._take(recording, fresh)
        self._report_later(contact_id, failed)

    async def _take(self, recording: OpenRecording, found: list[Any]) -> BaseException | None:
        """Under the recording's lock: stream entries after ``last_sid``, in order, into the
        file and acted on; the disk's error, if it failed."""
        failed: BaseException | None = None
        entries = [self._decode(sid, values) for sid, values in found]
        if recording.writer is not None and not recording.timeline_failed:
            try:
                if len(entries) <= INLINE_WRITE:
                    # a few appends to the page cache (no fsync) cost less than a thread hop,
                    # which at 1,000 chat lines/s was a tenth of the event loop's time
                    _write(recording.writer, entries)
                else:
                    await asyncio.to_thread(_write, recording.writer, entries)
            except (OSError, ValueError) as error:  # a disk that fails, a writer closed
                recording.timeline_failed = True
                failed = error
        recording.last_sid = entries[-1].sid
        for entry in entries:
            self._act_on(recording, entry)
        return failed

    def _report_later(self, contact_id: str, failed: BaseException | None) -> None:
        if failed is not None:
            # Not here: reporting appends to the timeline, which needs the lock just released.
            self._spawn(
                self.failure(contact_id, stage="timeline", error=failed),
                f"timeline failure {contact_id}",
            )

    @staticmethod
    def _decode(sid: str, values: dict[str, str]) -> Entry:
        try:
            fields = json.loads(values.get("f") or "{}")
            at = datetime.fromisoformat(values["t"].replace("Z", "+00:00"))
        except (KeyError, ValueError):
            fields, at = {"damaged_entry": values}, _now()
        return Entry(
            sid=sid,
            kind=values.get("k") or "event",
            at=at,
            instance=values.get("i", ""),
            fields=fields if isinstance(fields, dict) else {"value": fields},
        )

    def _act_on(self, recording: OpenRecording, entry: Entry) -> None:
        """What the owner does on reading an event (never awaits: it runs under the lock)."""
        if recording.sealing:
            return
        contact_id = recording.contact_id
        fields = entry.fields
        if entry.kind == "pause" and isinstance(fields.get("pause_id"), str):
            recording.pause_id = fields["pause_id"]
            call = self.media.get(contact_id)
            if call is not None and call.recorder is not None:
                call.recorder.pause()
            if recording.pause_timer is not None:
                recording.pause_timer.cancel()
            until = _parse_time(fields.get("until"))
            delay = (until - _now()).total_seconds() if until else self.pause_limit_s
            recording.pause_timer = self._spawn(
                self._pause_timer(recording, fields["pause_id"], max(0.0, delay)),
                f"pause limit {contact_id}",
            )
        elif entry.kind == "resume" and fields.get("pause_id") == recording.pause_id:
            recording.pause_id = None
            timer, recording.pause_timer = recording.pause_timer, None
            if timer is not None and timer is not asyncio.current_task():
                timer.cancel()
            call = self.media.get(contact_id)
            if call is not None and call.recorder is not None:
                call.recorder.resume()
        elif entry.kind == "event":
            before, after = fields.get("from"), fields.get("to")
            if after in FINAL_STATES:
                recording.sealing = True
                self._spawn(self.seal(contact_id), f"seal {contact_id}")
            elif before == ContactState.CONNECTED and after in (
                ContactState.WRAP_UP,
                ContactState.QUEUED,
            ):
                # The call of this leg is over, whichever instance ended it: its media and
                # its files end here, where they live (a later leg is a new call).
                call = self.media.get(contact_id)
                if call is not None:
                    self._spawn(self._close_leg(contact_id, call), f"close leg {contact_id}")
                if recording.pause_id is not None:
                    self._spawn(
                        self.end_pause(contact_id, "the call ended"), f"end pause {contact_id}"
                    )

    async def _close_leg(self, contact_id: str, call: CallMedia) -> None:
        if self.media.get(contact_id) is call:  # not a new leg started meanwhile
            await self.media.close_call(contact_id)

    async def _pause_timer(self, recording: OpenRecording, pause_id: str, delay: float) -> None:
        await asyncio.sleep(delay)
        if recording.pause_timer is asyncio.current_task():
            recording.pause_timer = None
        if recording.pause_id == pause_id and self.on_pause_expired is not None:
            await self.on_pause_expired(recording.contact_id, pause_id)

    async def end_pause(self, contact_id: str, reason: str) -> None:
        """A pause open when its call ends is closed, so that the gap has an end."""
        raw = await self.redis.getdel(redis_keys.recording_pause(contact_id))
        recording = self._open.get(contact_id)
        pause_id = recording.pause_id if recording else None
        if raw:
            with contextlib.suppress(ValueError, TypeError, KeyError):
                pause_id = json.loads(raw)["id"]
        if pause_id:
            await self.add(contact_id, "resume", pause_id=pause_id, by="system", reason=reason)

    # ------------------------------------------------------------------ media

    def start_media(self, call: CallMedia, contact_id: str) -> None:
        """Owner: record ``call``'s inbound tracks into the contact's directory (once per call)."""
        if self.root is None or call.recorder is not None:
            return
        recording = self._open.get(contact_id)
        if call.relay_path != "encoded":
            self._spawn(
                self.failure(
                    contact_id,
                    stage="start",
                    error="the transcoding relay (CC_MEDIA_RELAY=transcode) does not record",
                ),
                f"recorder failure {contact_id}",
            )
            return
        if recording is None or recording.closed:
            self._spawn(
                self.failure(contact_id, stage="start", error="this instance holds no claim on it"),
                f"recorder failure {contact_id}",
            )
            return
        call.start_recording(
            recording.directory,
            on_event=self._recorder_events(contact_id),
            paused=recording.pause_id is not None,
        )

    def _recorder_events(self, contact_id: str) -> RecorderEvent:
        async def on_event(kind: str, fields: dict[str, Any]) -> None:
            if kind == "recorder_failure":
                details = dict(fields)
                stage = str(details.pop("stage", "write"))
                error = str(details.pop("error", "unknown"))
                await self.failure(contact_id, stage=stage, error=error, **details)
            else:
                await self.add(contact_id, kind, **fields)

        return on_event

    # ------------------------------------------------------------------ failures

    async def failure(
        self, contact_id: str, *, stage: str, error: BaseException | str, **detail: Any
    ) -> None:
        """Report a recorder failure: DB flag, timeline (or DB event and log), metric, alarm.

        Once per contact, stage and file (or party and kind): a broken disk does not flood.
        """
        message = describe(error)
        key = (
            contact_id,
            stage,
            str(detail.get("file") or ""),
            str(detail.get("party") or ""),
            str(detail.get("media") or ""),
        )
        if key in self._reported:
            return
        self._reported.add(key)
        RECORDER_FAILURES.labels(stage=stage).inc()
        log.error(
            "recording of contact %s: %s failed: %s",
            contact_id,
            stage,
            message,
            extra={"contact_id": contact_id, "stage": stage, **mask_fields(detail)},
        )
        try:
            async with transaction(self.db) as session:
                await session.exec(
                    update(Contact)
                    .where(col(Contact.id) == contact_id)
                    .values(recording_failed=True)
                    .execution_options(synchronize_session=False)
                )
        except Exception:
            log.exception("recording of contact %s: could not flag the failure", contact_id)
        recording = self._open.get(contact_id)
        timeline_writable = stage != "timeline" and not (
            recording is not None and (recording.timeline_failed or recording.closed)
        )
        if timeline_writable:
            await self.add(contact_id, "recorder_failure", stage=stage, error=message, **detail)
        else:
            try:
                # Not through ``ContactCore.tx``: that would try the timeline again.
                async with transaction(self.db) as session:
                    await store.add_event(
                        session,
                        contact_id=contact_id,
                        actor="recorder",
                        kind="recorder_failure",
                        data={"stage": stage, "error": message, **detail},
                    )
                    session.info.pop(store.TIMELINE_EVENTS, None)
            except Exception:
                log.exception("recording of contact %s: could not store the failure", contact_id)
        try:
            await alarms.raise_alarm(
                self.redis,
                kind="recorder_failure",
                at=format_time(_now()),
                instance=self.instance_id,
                contact_id=contact_id,
                message=f"recording of contact {contact_id}: {stage} failed: {message}",
                detail={"stage": stage, "error": message, **detail},
            )
        except Exception:
            log.exception("recording of contact %s: could not raise the alarm", contact_id)

    # ------------------------------------------------------------------ sealing

    async def seal(
        self, contact_id: str, *, status: str | None = None, note: dict[str, Any] | None = None
    ) -> Any:
        """Owner: end the contact's recording and seal it (``sealing.seal``); its result."""
        from contact_center.contacts.sealing import seal

        recording = self._open.get(contact_id)
        if recording is None:
            return None
        recording.sealing = True
        if recording.interrupted and note is None:
            status = status or "incomplete"
            note = {
                "reason": "the instance recording this contact died during it; another"
                " recorded the rest (the media in between is missing)",
                "sealed_by": self.instance_id,
            }
        await self.media.close_call(contact_id)  # its files end; their media_close is written
        if recording.pause_id is not None:
            await self.end_pause(contact_id, "the contact ended")
        if note is not None:
            await self.add(contact_id, "recording_incomplete", **note)
        await self.drain(contact_id)
        async with recording.lock:
            recording.closed = True
            if recording.pause_timer is not None:
                recording.pause_timer.cancel()
            if recording.writer is not None:
                recording.writer.close()
        try:
            return await seal(self, recording, status=status)
        finally:
            self._open.pop(contact_id, None)
            self._reported = {k for k in self._reported if k[0] != contact_id}

    async def sweep(self) -> list[str]:
        """Seal, as ``incomplete``, every unsealed directory that no live process claims:
        its instance died (or stopped) before sealing it; and chain a manifest its instance
        wrote without getting to the ledger entry. Returns the contacts sealed or chained."""
        from contact_center.contacts.sealing import chain_unchained

        if self.root is None:
            return []
        sealed: list[str] = await chain_unchained(self)
        claims = await asyncio.to_thread(lambda: list(unsealed(self.root)))  # type: ignore[arg-type]
        for claim in claims:
            contact_id = claim.contact_id
            if contact_id in self._open:
                claim.release()
                continue
            if self.adopt_orphan is not None:
                try:
                    live = await self.adopt_orphan(contact_id)
                except Exception:
                    log.exception("recording of %s: could not move its contact here", contact_id)
                    live = False
                if live:  # the contact goes on: so does its recording, here
                    await self.adopt(contact_id, claim)
                    continue
            recording = OpenRecording(contact_id, claim, sealing=True)
            await self._reopen(recording)
            self._open[contact_id] = recording
            log.warning(
                "recording of contact %s was never sealed: sealing it incomplete", contact_id
            )
            try:
                result = await self.seal(
                    contact_id,
                    status="incomplete",
                    note={
                        "reason": "the instance recording this contact stopped before sealing it",
                        "sealed_by": self.instance_id,
                    },
                )
            except Exception:
                log.exception("sealing the unsealed recording of %s failed", contact_id)
                continue
            if result is not None:
                sealed.append(contact_id)
        return sealed

    async def shutdown(self, limit_s: float = 30.0) -> None:
        """On shutdown (the media already closed): let seals under way finish, and hand over
        what is still going on: a ``handover`` line, the stream copied into the file, and the
        directory left unsealed for the instance that adopts the contact (``adopt``: another
        one now, or this server's next start), which goes on writing it."""
        live = [cid for cid, r in self._open.items() if not r.sealing and not r.closed]
        sealing = [t for t in self._tasks if t.get_name().startswith("seal ")]
        work = [self._hand_over(cid) for cid in live]
        if not work and not sealing:
            return
        done = asyncio.gather(*work, *sealing, return_exceptions=True)
        try:
            async with asyncio.timeout(limit_s):
                await done
        except TimeoutError:
            log.error(
                "recordings: handing over at shutdown took over %s s; the stream keeps the rest",
                limit_s,
            )

    async def _hand_over(self, contact_id: str) -> None:
        await self.add(
            contact_id,
            HANDOVER,
            reason="the server stopped during the contact; the instance that adopts it goes on",
        )
        await self.drain(contact_id)

    async def close(self) -> None:
        """Stop every task and let go of every claim (what is unsealed is swept later)."""
        await stop_tasks(list(self._tasks))
        for recording in self._open.values():
            if recording.writer is not None:
                recording.writer.close()
            recording.claim.release()
        self._open.clear()

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        """Copy what other instances append to the streams of this instance's contacts."""
        try:
            await self._read_streams()
        finally:
            self._reading = set()

    async def _read_streams(self) -> None:
        while True:
            open_now = {cid: r for cid, r in self._open.items() if not r.closed}
            self._reading = set(open_now)
            streams = {redis_keys.timeline(cid): r.last_sid or "0-0" for cid, r in open_now.items()}
            if not streams:
                self._wake.clear()
                await self._wake.wait()
                continue
            found: Any
            try:
                found = await self.redis.xread(
                    streams,  # type: ignore[arg-type]
                    block=READ_BLOCK_MS,
                    count=DRAIN_BATCH,
                )
            except RedisError:
                log.warning("timelines: Redis failed, retrying", exc_info=True)
                await asyncio.sleep(1.0)
                continue
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # redis-py may swallow a cancellation that lands during a blocking read.
                raise asyncio.CancelledError
            for key, entries in found or []:
                await self._take_read(str(key).removeprefix(redis_keys.timeline("")), entries)
            if found:
                # let a busy stream gather a few entries per read (each read names every
                # open stream: at 1,000 chat lines/s one read per line would cost more)
                await asyncio.sleep(READ_GATHER_S)


def _write(writer: TimelineWriter, entries: list[Entry]) -> None:
    """Append entries in order; an entry the timeline refuses (a bad kind, a value JSON cannot
    hold) becomes a line saying so, in its place: one bad event does not stop the timeline."""
    for entry in entries:
        sid = sid_pair(entry.sid)
        try:
            writer.append(entry.kind, at=entry.at, sid=sid, instance=entry.instance, **entry.fields)
        except ValueError as error:
            if writer.closed:
                raise
            writer.append(
                "unwritable_event",
                at=entry.at,
                sid=sid,
                instance=entry.instance,
                original_kind=str(entry.kind)[:64],
                error=str(error)[:500],
            )


def sid_pair(sid: str) -> list[int]:
    """``"1764681633974-0"`` -> ``[1764681633974, 0]`` (as a string it could pass for a card
    number, and be masked)."""
    ms, _, seq = sid.partition("-")
    return [int(ms), int(seq or 0)]


def sid_text(pair: Any) -> str | None:
    """The inverse of ``sid_pair`` (None for anything else)."""
    if isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, int) for x in pair):
        return f"{pair[0]}-{pair[1]}"
    return None


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return _aware(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return None
