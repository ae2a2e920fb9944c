"""Wrap-up: an advisor records a contact's outcome code and notes, and is ready for the next.

The contact an advisor ended waits in ``wrap_up`` until they are done (or the router's wrap-up
time runs out, when it ends without an outcome). An advisor who transferred a contact on, or
whose wrap-up time ran out first, may still record theirs: each hand-over gets its own row
(``ContactWrapup``) and event, and nothing typed is lost to a timer.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from contact_center.contacts import store
from contact_center.contacts.core import ContactCore, advisor_ref, agent_id_of
from contact_center.contacts.states import ContactState
from contact_center.db.engine import transaction
from contact_center.errors import ClientError, Conflict, ErrorCode
from contact_center.identity.auth import Identity

log = logging.getLogger(__name__)

#: How far back a reconnecting advisor is reminded of hand-overs they did not wrap up.
PENDING_FOR_S = 12 * 3600


def _utc(value: datetime) -> datetime:
    """SQLite gives back naive datetimes: every time we store is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class Wrapups(ContactCore):
    """Finishing with a contact."""

    def check_outcome(self, outcome: str | None) -> None:
        if outcome is not None and outcome not in self.wrapup_outcomes:
            raise ClientError(
                f"unknown outcome {outcome!r}; one of: {', '.join(self.wrapup_outcomes)}",
                code=ErrorCode.UNKNOWN_OUTCOME,
            )

    async def wrapup_done(
        self,
        identity: Identity,
        contact_id: str | None,
        *,
        outcome: str | None = None,
        notes: str | None = None,
    ) -> tuple[list[str], bool]:
        """End wrap-up of ``contact_id`` (or of all the advisor's), recording ``outcome`` and
        ``notes``; returns (the contacts that left wrap-up, whether anything was recorded)."""
        assert identity.user_id is not None
        self.check_outcome(outcome)
        notes = (notes or "").strip() or None
        async with transaction(self.db) as session:
            open_contacts = await store.open_contacts_of_advisor(
                session, advisor_id=identity.user_id
            )
        in_wrapup = [c for c in open_contacts if c.state == ContactState.WRAP_UP]
        targets = in_wrapup
        recorded = False
        if contact_id is not None:
            targets = [c for c in in_wrapup if c.id == contact_id]
            if not targets:
                recorded = await self._record_late(identity, contact_id, outcome, notes)
        done = [
            await self.finish_wrapup(
                c.id, actor=identity.ref, notes=notes, outcome=outcome, advisor_id=identity.user_id
            )
            for c in targets
        ]
        recorded = recorded or bool(done and (outcome or notes))
        if len(done) == len(in_wrapup):
            # The router's wrap-up is the advisor's, not a contact's: it ends with the last one.
            await self.router.wrapup_done(agent_id_of(identity.user_id))
        return done, recorded

    async def _record_late(
        self, identity: Identity, contact_id: str, outcome: str | None, notes: str | None
    ) -> bool:
        """The wrap-up of a contact no longer in wrap-up with this advisor: transferred on, or
        its wrap-up time ran out. Refused unless they had it and have not recorded it since."""
        assert identity.user_id is not None
        async with transaction(self.db) as session:
            contact = await store.get_contact(session, contact_id=contact_id)
            events = await store.events_of(session, contact_id=contact_id) if contact else []
            mine = await store.wrapups_of(session, contact_ids=[contact_id])
        accepted = [e for e in events if e.kind == "accepted" and e.actor == identity.ref]
        if contact is None or not accepted:
            await self.contact_for(identity, contact_id)  # refuses and audits a foreign id
            raise Conflict(f"contact {contact_id} is not in wrap-up", code=ErrorCode.INVALID_STATE)
        if contact.advisor_id == identity.user_id and contact.state != ContactState.ENDED:
            raise Conflict(f"contact {contact_id} is {contact.state}", code=ErrorCode.INVALID_STATE)
        last = _utc(accepted[-1].at)
        if any(w.advisor_id == identity.user_id and _utc(w.at) >= last for w in mine):
            raise Conflict(f"you already wrapped up contact {contact_id}", code=ErrorCode.CONFLICT)
        if not (outcome or notes):
            return False  # "ready" with nothing to say: nothing to keep
        async with self.tx() as session:
            await store.add_wrapup(
                session, contact_id=contact_id, advisor_id=identity.user_id,
                outcome=outcome, notes=notes,
            )
            await store.add_event(
                session, contact_id=contact_id, actor=identity.ref, kind="wrapup_recorded",
                data={"outcome": outcome, "notes": notes},
            )
        return True

    async def remind_pending_wrapups(self, identity: Identity) -> int:
        """Tell a (re)connected advisor of the hand-overs of the last ``PENDING_FOR_S`` they
        have not wrapped up (transferred on, or wrap-up time over): their console shows the
        form again, so a reload loses nothing. Returns how many."""
        assert identity.user_id is not None
        since = datetime.now(UTC) - timedelta(seconds=PENDING_FOR_S)
        async with transaction(self.db) as session:
            accepted = await store.events_by_actor(
                session, actor=identity.ref, kind="accepted", since=since
            )
            ids = list(dict.fromkeys(e.contact_id for e in accepted))
            contacts = {c.id: c for c in await store.contacts_by_id(session, ids)}
            wrapups = await store.wrapups_of(session, contact_ids=ids)
            finished = await store.events_by_actor(
                session, actor=identity.ref, kind="wrapup_done", since=since
            )
        last_accept = {e.contact_id: _utc(e.at) for e in accepted}
        done_by_me = {e.contact_id for e in finished}
        pending = [
            c for cid, c in contacts.items()
            if cid not in done_by_me
            and not (c.advisor_id == identity.user_id and c.state != ContactState.ENDED)
            and not any(
                w.contact_id == cid and w.advisor_id == identity.user_id
                and _utc(w.at) >= last_accept[cid]
                for w in wrapups
            )
        ]
        for contact in pending:
            await self.bus.publish(
                identity.ref,
                self.state_message(
                    contact, reason="wrapup_pending", facts=await self.facts_of(contact)
                ).model_copy(update={"state": "wrapup_pending"}),
            )
        return len(pending)

    async def finish_wrapup(
        self,
        contact_id: str,
        *,
        actor: str,
        notes: str | None = None,
        outcome: str | None = None,
        advisor_id: int | None = None,
    ) -> str:
        """The contact leaves wrap-up (ends), with the advisor's outcome and notes if given."""
        data = {k: v for k, v in (("outcome", outcome), ("notes", notes)) if v}
        async with self.tx() as session:
            _, contact = await store.transition(
                session,
                contact_id=contact_id,
                to=ContactState.ENDED,
                actor=actor,
                kind="wrapup_done",
                data=data or None,
            )
            if data and advisor_id is not None:
                await store.add_wrapup(
                    session, contact_id=contact_id, advisor_id=advisor_id,
                    outcome=outcome, notes=notes,
                )
        if contact.advisor_id is not None:
            await self.bus.publish(
                advisor_ref(agent_id_of(contact.advisor_id)),
                self.state_message(contact, reason="wrapup_done"),
            )
        return contact_id
