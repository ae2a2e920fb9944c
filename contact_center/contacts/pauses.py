"""Secure pause: the advisor stops the media recording while the customer reads out a card
number (PCI DSS), with a reason; it resumes when asked or by itself after the limit.

The open pause of a contact is one Redis key (``redis_keys.recording_pause``), set only if
absent, so that two instances cannot both open one; it expires a little after the limit. The
``pause`` and ``resume`` go to the contact's timeline, with who and why; the instance that
records the contact reads them there and pauses or resumes its recorder (``Recordings``), and
it is that instance's timer that resumes at the limit, if the key still names that pause. The
manifest lists the pauses (``recordings.timeline.pauses_of``); both parties are told
(``recording.state``).
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import timedelta

from contact_center import redis_keys
from contact_center.contacts import store
from contact_center.contacts.core import ContactCore, now_utc
from contact_center.contacts.states import ContactState
from contact_center.db.engine import transaction
from contact_center.errors import Conflict, ErrorCode
from contact_center.identity.auth import Identity
from contact_center.protocol import RecordingStatePush
from recordings.timeline import format_time

log = logging.getLogger(__name__)

#: The key outlives the limit a little: the recording instance's timer resumes first.
KEY_GRACE_S = 5.0

# KEYS[1]: the contact's pause key. ARGV[1]: the pause id whose time is up.
# Deletes the key only if it still holds that pause (not one opened since); returns 1 if so.
_END_IF_SAME = """
local value = redis.call('GET', KEYS[1])
if value and cjson.decode(value)['id'] == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Pauses(ContactCore):
    """Pausing and resuming a contact's media recording."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.recordings.on_pause_expired = self.pause_expired

    async def pause_recording(
        self, identity: Identity, contact_id: str, reason: str
    ) -> RecordingStatePush:
        """The contact's advisor pauses its recording, for at most the configured limit."""
        contact = await self.contact_for(identity, contact_id)
        if contact.state != ContactState.CONNECTED:
            raise Conflict(
                f"contact {contact_id} is {contact.state}; a recording pauses while connected",
                code=ErrorCode.INVALID_STATE,
            )
        limit = self.recordings.pause_limit_s
        pause_id = uuid.uuid4().hex
        at = now_utc()
        until = at + timedelta(seconds=limit)
        value = {"id": pause_id, "by": identity.ref, "reason": reason, "until": format_time(until)}
        if not await self.redis.set(
            redis_keys.recording_pause(contact_id),
            json.dumps(value),
            nx=True,
            px=int((limit + KEY_GRACE_S) * 1000),
        ):
            raise Conflict(
                f"the recording of contact {contact_id} is already paused",
                code=ErrorCode.ALREADY_PAUSED,
            )
        await self.recordings.add(
            contact_id,
            "pause",
            at=at,
            pause_id=pause_id,
            by=identity.ref,
            reason=reason,
            until=format_time(until),
            limit_s=limit,
        )
        if self.recordings.owns(contact_id):
            # The media is here: in effect before the advisor hears "paused". (Elsewhere, the
            # instance holding it applies it as it reads the timeline, within moments.)
            await self.recordings.drain(contact_id)
        state = RecordingStatePush(
            contact_id=contact_id,
            paused=True,
            pause_id=pause_id,
            by=identity.ref,
            reason=reason,
            resume_at=until,
            at=at,
        )
        await self.notify_parties(contact, state)
        return state

    async def resume_recording(self, identity: Identity, contact_id: str) -> RecordingStatePush:
        """The contact's advisor resumes a paused recording."""
        contact = await self.contact_for(identity, contact_id)
        raw = await self.redis.getdel(redis_keys.recording_pause(contact_id))
        if raw is None:
            raise Conflict(
                f"the recording of contact {contact_id} is not paused",
                code=ErrorCode.NOT_PAUSED,
            )
        pause = json.loads(raw)
        at = now_utc()
        reason = "resumed by the advisor"
        await self.recordings.add(
            contact_id, "resume", at=at, pause_id=pause["id"], by=identity.ref, reason=reason
        )
        state = RecordingStatePush(
            contact_id=contact_id,
            paused=False,
            pause_id=pause["id"],
            by=identity.ref,
            reason=reason,
            at=at,
        )
        await self.notify_parties(contact, state)
        return state

    async def pause_expired(self, contact_id: str, pause_id: str) -> None:
        """The recording instance's timer: the pause reached the limit, resume."""
        ended = await self.redis.eval(
            _END_IF_SAME, 1, redis_keys.recording_pause(contact_id), pause_id
        )
        if not ended:
            return  # resumed meanwhile (or a newer pause holds the key)
        at = now_utc()
        reason = f"the pause limit ({self.recordings.pause_limit_s:g} s) was reached"
        await self.recordings.add(
            contact_id, "resume", at=at, pause_id=pause_id, by="system", reason=reason
        )
        async with transaction(self.db) as session:
            contact = await store.get_contact(session, contact_id=contact_id)
        if contact is not None:
            await self.notify_parties(
                contact,
                RecordingStatePush(
                    contact_id=contact_id,
                    paused=False,
                    pause_id=pause_id,
                    by="system",
                    reason=reason,
                    at=at,
                ),
            )
