"""What a Redis outage may have kept from the people connected here, sent again.

Messages reach a person's connections through Redis pub/sub (``contact_center.bus``), which
keeps nothing: what is published while an instance's subscription is down (a failover, a
restart of Redis) reaches nobody here. When the subscription is back, each person connected
to this instance gets, for each of their open contacts, its state and its chat (clients place
lines by ``seq`` and skip a line they have shown: a line is shown once), and an advisor the
offers the router holds for them (an offer lost in the gap would otherwise expire as a miss).
"""

from __future__ import annotations

import logging

from contact_center.contacts import store
from contact_center.contacts.core import agent_id_of, user_id_of_ref
from contact_center.contacts.service import ContactService
from contact_center.db.engine import transaction
from routing.errors import UnknownAgentError

log = logging.getLogger(__name__)


async def redeliver_local(svc: ContactService) -> int:
    """Send again to this instance's connections; returns how many contacts were covered."""
    covered = 0
    for ref in svc.bus.local_refs():
        async with transaction(svc.db) as session:
            contacts = await store.live_contacts_of_customer(session, customer_ref=ref)
            user_id = user_id_of_ref(ref)
            if user_id is not None:
                contacts += await store.open_contacts_of_advisor(session, advisor_id=user_id)
        for contact in {c.id: c for c in contacts}.values():
            svc.bus.deliver_local(ref, svc.state_message(contact))
            for frame in await svc.chat_frames(contact.id):
                svc.bus.deliver_local(ref, frame)
            covered += 1
        if user_id is not None:  # an advisor (a signed-in customer has no router agent)
            agent_id = agent_id_of(user_id)
            try:
                status = await svc.router.agent_status(agent_id)
            except UnknownAgentError:
                continue
            for contact_id in status.offered:
                await svc.send_offer(contact_id, agent_id)
    if covered:
        log.warning("bus: sent %d open contacts again after the Redis gap", covered)
    return covered
