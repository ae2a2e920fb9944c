"""The contact center's channel: Rasa's REST channel plus what the NLU made of the line.

``POST /webhooks/contact_center/webhook`` takes what the REST channel takes (``sender``,
``message``, ``metadata``) and answers ``{"messages": [...], "parse": {"intent": ...,
"intent_ranking": [...]}}``: the bot's messages, as the REST channel's list, and the parse of the
customer's line. Without it the gateway asks ``/model/parse`` as well, a second NLU pass over
every line, which doubles what Rasa does per turn (and halves the turns it can take under load).

The channel parses the line itself and hands the parse to Rasa with the message
(``UserMessage.parse_data``, which the processor takes instead of parsing again): the same NLU
call the processor makes (the NLU graph does not read the tracker), and no second read of the
conversation's tracker from the store after the turn to find it (a full deserialisation of the
conversation, 5 % of Rasa's CPU at 50 conversations).

Runs inside Rasa 3.6 (Python 3.10): it imports Rasa and Sanic, nothing of the contact center.
Named in ``credentials.yml``; the module is found from Rasa's working directory
(``python -m rasa`` from ``chatbot/rasa``, or ``PYTHONPATH`` in a container).
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Dict, Optional, Text

from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.channels.rest import RestInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse


def _parse_of(data: Optional[Dict[Text, Any]]) -> Optional[Dict[Text, Any]]:
    """The intent and ranking of a parse, if it has an intent."""
    if not data or not data.get("intent"):
        return None
    return {"intent": data.get("intent"), "intent_ranking": data.get("intent_ranking") or []}


class ContactCenterInput(RestInput):
    """The REST channel, answering with the line's parse beside the bot's messages."""

    @classmethod
    def name(cls) -> Text:
        return "contact_center"

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[None]]) -> Blueprint:
        webhook = Blueprint("contact_center_webhook", __name__)

        @webhook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            if not isinstance(request.json, dict):
                return response.json({"error": "a JSON object is expected"}, status=400)
            sender_id = await self._extract_sender(request)
            text = self._extract_message(request)
            if not isinstance(sender_id, str) or not isinstance(text, str):
                return response.json({"error": "sender and message must be strings"}, status=400)
            collector = CollectingOutputChannel()
            metadata = self.get_metadata(request)
            parse_data = None
            processor = getattr(getattr(request.app.ctx, "agent", None), "processor", None)
            if processor is not None:  # else the turn fails as the REST channel's would
                parse_data = await processor.parse_message(
                    UserMessage(text, sender_id=sender_id, input_channel=self.name(),
                                metadata=metadata)
                )
            await on_new_message(
                UserMessage(
                    text,
                    collector,
                    sender_id,
                    parse_data=parse_data,
                    input_channel=self.name(),
                    metadata=metadata,
                )
            )
            return response.json({"messages": collector.messages, "parse": _parse_of(parse_data)})

        return webhook
