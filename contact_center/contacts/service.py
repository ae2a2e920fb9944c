"""The contact service: every job of ``contacts`` on one object, as the WebSocket handlers,
the bot gateway and the event loops use it."""

from __future__ import annotations

from contact_center.contacts.assignment import Assignment
from contact_center.contacts.calls import Calls
from contact_center.contacts.chat import Chat
from contact_center.contacts.context import CustomerContext
from contact_center.contacts.ending import Ending
from contact_center.contacts.intake import Intake
from contact_center.contacts.left_messages import LeftMessages
from contact_center.contacts.pauses import Pauses
from contact_center.contacts.presence import Presence
from contact_center.contacts.transfers import Transfers
from contact_center.contacts.upgrades import Upgrades
from contact_center.contacts.wrapups import Wrapups


class ContactService(
    LeftMessages, Intake, Presence, Assignment, Transfers, Wrapups, Chat, Upgrades, Calls, Pauses,
    Ending, CustomerContext,
):
    """Built once per process by ``server.contexts.contacts_ctx``; see ``contacts.core``."""
