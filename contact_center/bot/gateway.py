"""The bot as the first stop of a customer session: greets, answers through Rasa, hands off.

Signalling calls ``BotGateway.start`` for a new session (unless the customer asked to skip the
bot) and ``BotGateway.customer_message`` for every customer chat line. While the contact is in
state ``bot`` the line goes to Rasa and the replies come back as chat lines of sender ``bot``;
once the bot hands off (or Rasa fails) the contact is queued and lines go to the advisor.
Every line, the customer's, the bot's and the system's, is in the contact's chat history, so the
advisor's offer carries the whole bot conversation.

Card numbers are masked in the customer's line before it goes anywhere, Rasa included (so the
bot can never echo one, and its tracker store never holds one), and in the bot's replies before
they are stored. Each turn is a ``bot`` line of the contact's timeline: the customer's text, the
intent with its confidence and the language the NLU saw, the replies, the handoff if any. The
intent comes from Rasa's parse of the same line: the contact center's Rasa channel answers
the turn with it (one NLU pass); a Rasa without that channel is asked ``/model/parse``
alongside the turn, so that it adds no latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import yaml

from chatbot.client import BotError, ParseResult, RasaClient
from chatbot.env import RASA_DIR
from chatbot.handoff import Turn, split_bot_messages
from contact_center.contacts import store
from contact_center.contacts.core import skills_for_topic
from contact_center.contacts.service import ContactService
from contact_center.contacts.states import ContactState, InvalidTransition
from contact_center.db.engine import transaction
from contact_center.db.models import Contact
from contact_center.identity.auth import Identity
from contact_center.protocol import SessionStart
from recordings.redact import mask_card_numbers

log = logging.getLogger(__name__)

#: The action server's own catalogue: the greeting is the one the bot says to "hello".
CATALOGUE = RASA_DIR / "actions" / "catalogue.yaml"
#: Script of the language the customer picked: Cantonese customers write traditional, Mandarin
#: ones (most often) simplified. Rasa uses it only when a message cannot tell by itself.
SCRIPT_OF = {"en": "latin", "zh": "hans", "yue": "hant"}
TAG_OF = {"en": "en", "zh": "zh-Hans", "yue": "yue-Hant"}
BOT_REF = "bot"
SYSTEM_REF = "system"
UNAVAILABLE = {
    "en": "Our assistant is unavailable; we are connecting you to an advisor.",
    "zh": "智能助理暂时无法使用，正在为您转接客户经理。",
    "yue": "智能助理暫時用唔到，而家幫你轉駁客戶經理。",
}


def greeting(language: str, catalogue: Path = CATALOGUE) -> str:
    """The bot's greeting in the language the customer picked."""
    entry = yaml.safe_load(catalogue.read_text(encoding="utf-8"))["greet"]
    return str(entry.get(TAG_OF.get(language, "en")) or entry["en"])


def fixed_replies(language: str, catalogue: Path = CATALOGUE) -> list[str]:
    """The bot's replies in ``language`` that have no placeholder (said as they are written)."""
    tag = TAG_OF.get(language, "en")
    entries = yaml.safe_load(catalogue.read_text(encoding="utf-8"))
    texts = (str(entry.get(tag) or "") for entry in entries.values())
    return [text for text in texts if text and "{" not in text]


class _Turns:
    """One bot turn at a time per contact (a customer may write from two tabs)."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, contact_id: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(contact_id, (asyncio.Lock(), 0))
        self._locks[contact_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[contact_id]
            if users <= 1:
                del self._locks[contact_id]
            else:
                self._locks[contact_id] = (lock, users - 1)


#: How long a healthy answer from Rasa is trusted before a new contact asks again.
HEALTHY_FOR_S = 5.0


class _Health:
    """Whether Rasa answers, asked once for everyone: a burst of new customers shares one probe
    (fifty ``/status`` calls at once would slow Rasa down until the probes time out, and send
    healthy bot conversations to the queue), and a healthy answer, or a bot turn that worked,
    is trusted for ``HEALTHY_FOR_S``. An unhealthy one is not kept: the next contact asks."""

    def __init__(self, probe: RasaClient) -> None:
        self.probe = probe
        self._healthy_until = 0.0
        self._asking: asyncio.Task[bool] | None = None

    def saw_healthy(self) -> None:
        self._healthy_until = time.monotonic() + HEALTHY_FOR_S

    async def healthy(self) -> bool:
        if time.monotonic() < self._healthy_until:
            return True
        if self._asking is None or self._asking.done():
            self._asking = asyncio.create_task(self._ask(), name="rasa health")
        return await asyncio.shield(self._asking)

    async def _ask(self) -> bool:
        healthy = await self.probe.healthy()
        if healthy:
            self.saw_healthy()
        return healthy


class BotGateway:
    """Puts Rasa between a new customer and the queue (``app[appkeys.BOT]``)."""

    def __init__(self, svc: ContactService, rasa: RasaClient, *, probe: RasaClient | None = None,
                 catalogue: Path = CATALOGUE) -> None:
        self.svc = svc
        self.rasa = rasa
        self.probe = probe or rasa  # a client with a short timeout for the health check
        self._health = _Health(self.probe)
        self.catalogue = catalogue
        self._turns = _Turns()

    async def start(self, identity: Identity, msg: SessionStart) -> Contact:
        """Create the contact in state ``bot`` and greet; without Rasa, queue it at once."""
        contact = await self.svc.start(
            identity, channels=msg.channels, language=msg.language, topic=msg.topic,
            state=ContactState.BOT, request_id=msg.id,
        )
        if not await self._health.healthy():
            log.warning("Rasa at %s does not answer: contact %s goes to the queue",
                        self.rasa.base_url, contact.id)
            return await self._without_bot(contact, reason="bot_unavailable")
        await self._say(contact, greeting(contact.language, self.catalogue))
        return contact

    async def customer_message(
        self, identity: Identity, contact_id: str, text: str, *, request_id: str | None = None
    ) -> int | None:
        """Handle a customer line while the bot has the contact; None once it has not. A
        retry of a stored line (same ``request_id``) is that line: the bot does not answer
        it again."""
        async with self._turns.hold(contact_id):
            async with transaction(self.svc.db) as session:
                contact = await store.get_contact(session, contact_id=contact_id)
            # Someone else's or an unknown id: svc.chat refuses it (and audits the attempt).
            if (contact is None or contact.customer_ref != identity.ref
                    or contact.state != ContactState.BOT):
                return None
            text = mask_card_numbers(text)
            seq, new = await self.svc.post_chat_once(
                contact, sender_ref=identity.ref, sender_role="customer", text=text,
                request_id=request_id,
            )  # fmt: skip
            if not new:
                return seq
            metadata = {"language": contact.language,
                        "script": SCRIPT_OF.get(contact.language, "latin")}
            parsed: ParseResult | None = None
            try:
                replies, parsed = await self.rasa.turn(contact.id, text, metadata=metadata)
                self._health.saw_healthy()
                texts, handoff = split_bot_messages(replies)
            except BotError as exc:  # BotUnavailable included
                log.warning("bot turn of contact %s failed: %s", contact.id, exc)
                await self._turn(contact, text, parsed, [], None, error=str(exc))
                await self._without_bot(contact, reason="bot_unavailable")
                return seq
            except ValueError:  # a malformed handoff: a bug in the action server
                log.exception("bot turn of contact %s: bad handoff payload", contact.id)
                await self._turn(contact, text, parsed, [], None, error="bad handoff")
                await self._without_bot(contact, reason="bot_error")
                return seq
            texts = [mask_card_numbers(reply) for reply in texts]
            await self._turn(contact, text, parsed, texts, handoff)
            for reply in texts:
                await self._say(contact, reply)
            if handoff is not None:
                await self._handoff(contact, language=handoff.language, skills=handoff.skills,
                                    priority=handoff.priority, intent=handoff.intent,
                                    reason=handoff.reason, transcript=handoff.transcript)
            return seq

    async def _turn(self, contact: Contact, text: str, parsed: ParseResult | None,
                    replies: list[str], handoff: Any, *, error: str | None = None) -> None:
        """One bot turn in the contact's timeline."""
        await self.svc.recordings.add(
            contact.id, "bot",
            customer_text=text,
            intent=parsed.intent if parsed else None,
            confidence=round(parsed.confidence, 4) if parsed else None,
            language=parsed.language if parsed else contact.language,
            replies=replies,
            handoff=handoff.model_dump(mode="json", exclude={"transcript"}) if handoff else None,
            error=error,
        )

    async def _say(self, contact: Contact, text: str) -> int:
        return await self.svc.post_chat(contact, sender_ref=BOT_REF, sender_role="bot", text=text)

    async def _without_bot(self, contact: Contact, *, reason: str) -> Contact:
        """Tell the customer the assistant is out and queue them with what they chose."""
        await self.svc.post_chat(contact, sender_ref=SYSTEM_REF, sender_role="system",
                                 text=UNAVAILABLE.get(contact.language, UNAVAILABLE["en"]))
        history = await self.svc.history(contact.id)
        turns = [Turn(role=line["sender"], text=line["text"]) for line in history
                 if line["sender"] in ("customer", "bot")]
        return await self._handoff(
            contact, language=contact.language,
            skills=contact.skills or skills_for_topic(contact.topic), priority=contact.priority,
            intent=None, reason=reason, transcript=turns,
        )

    async def _handoff(self, contact: Contact, *, language: str, skills: dict[str, int],
                       priority: int, intent: str | None, reason: str,
                       transcript: list[Turn]) -> Contact:
        data: dict[str, Any] = {
            "intent": intent, "reason": reason,
            "transcript": [turn.model_dump(mode="json") for turn in transcript],
        }
        try:
            return await self.svc.handoff_to_queue(
                contact.id, actor=BOT_REF, language=language, skills=skills, priority=priority,
                data=data,
            )
        except InvalidTransition as exc:
            # The customer left (or another instance handed off) while Rasa was answering.
            log.info("handoff of contact %s skipped: %s", contact.id, exc)
            return contact
