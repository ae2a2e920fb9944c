"""Async client of the Rasa server: NLU parse and the REST channel."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from chatbot.language import detect


class BotError(RuntimeError):
    """The Rasa server refused a request."""


class BotUnavailable(BotError):
    """The Rasa server cannot be reached, timed out or failed (5xx)."""


class NoSuchEndpoint(BotError):
    """The Rasa server has no such endpoint (404): a channel it was not configured with."""

#: The contact center's Rasa channel (chatbot/rasa/connectors/contact_center.py).
TURN_PATH = "/webhooks/contact_center/webhook"


@dataclass(frozen=True)
class ParseResult:
    """What the NLU understood of one message."""

    intent: str  # "nlu_fallback" when below the confidence threshold
    confidence: float
    language: str  # en | zh | yue (chatbot.language)
    script: str = "latin"  # latin | hans | hant
    ranking: tuple[tuple[str, float], ...] = field(default=())  # classifier's intents, best first

    @property
    def best_guess(self) -> str:
        """The classifier's top intent even when the fallback fired."""
        for name, _ in self.ranking:
            if name != "nlu_fallback":
                return name
        return self.intent


class RasaClient:
    """Talks to one Rasa server (started with --enable-api and the REST channel)."""

    def __init__(self, base_url: str, *, session: aiohttp.ClientSession, timeout: float = 5) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._has_channel = True  # until Rasa says it has no contact center channel

    async def _post(self, path: str, payload: dict[str, Any]) -> Any:
        url = f"{self.base_url}{path}"
        try:
            async with self._session.post(url, json=payload, timeout=self._timeout) as resp:
                if resp.status >= 500:
                    raise BotUnavailable(f"Rasa at {self.base_url} failed: HTTP {resp.status} on {path}")
                if resp.status == 404:
                    raise NoSuchEndpoint(f"Rasa at {self.base_url} has no {path}")
                if resp.status >= 400:
                    body = (await resp.text())[:300]
                    raise BotError(f"Rasa at {self.base_url} refused {path}: HTTP {resp.status} {body}")
                return await resp.json(content_type=None)
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            raise BotUnavailable(f"Rasa at {self.base_url} is unreachable: {exc}") from exc
        except TimeoutError as exc:  # asyncio.TimeoutError is TimeoutError on 3.11
            raise BotUnavailable(
                f"Rasa at {self.base_url} did not answer {path} within {self._timeout.total}s"
            ) from exc

    async def healthy(self) -> bool:
        """True when the server answers and has a model loaded."""
        try:
            async with self._session.get(f"{self.base_url}/status", timeout=self._timeout) as resp:
                return resp.status == 200 and bool((await resp.json(content_type=None)).get("model_file"))
        except (TimeoutError, aiohttp.ClientError, ValueError):
            return False

    async def parse(self, text: str) -> ParseResult:
        """Intent and confidence from /model/parse, language and script from chatbot.language."""
        body = await self._post("/model/parse", {"text": text})
        if not isinstance(body, dict):
            raise BotError(f"Rasa at {self.base_url} answered /model/parse with {type(body).__name__}")
        return parse_result(text, body)

    async def turn(self, sender_id: str, text: str, *, metadata: dict[str, Any] | None = None
                   ) -> tuple[list[dict[str, Any]], ParseResult | None]:
        """One customer line: the bot's messages, and what the NLU made of the line (None when
        it cannot say). Through the contact center's channel, one NLU pass answers both; a Rasa
        without that channel is asked through REST and ``/model/parse`` at once."""
        payload: dict[str, Any] = {"sender": sender_id, "message": text}
        if metadata:
            payload["metadata"] = metadata
        if self._has_channel:
            try:
                body = await self._post(TURN_PATH, payload)
            except NoSuchEndpoint:
                self._has_channel = False
            else:
                messages = body.get("messages") if isinstance(body, dict) else None
                if not isinstance(messages, list):
                    raise BotError(f"Rasa at {self.base_url} answered {TURN_PATH} without messages")
                parse = body.get("parse")
                return messages, parse_result(text, parse) if isinstance(parse, dict) else None
        messages, parsed = await asyncio.gather(
            self.send(sender_id, text, metadata=metadata), self._parse_or_none(text)
        )
        return messages, parsed

    async def _parse_or_none(self, text: str) -> ParseResult | None:
        try:
            return await self.parse(text)
        except (BotError, ValueError):
            return None


    async def send(self, sender_id: str, text: str, *,
                   metadata: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Send a customer message through the REST channel; return the bot's messages."""
        payload: dict[str, Any] = {"sender": sender_id, "message": text}
        if metadata:
            payload["metadata"] = metadata
        messages = await self._post("/webhooks/rest/webhook", payload)
        if not isinstance(messages, list):
            raise BotError(f"Rasa at {self.base_url} answered the webhook with {type(messages).__name__}")
        return messages


def parse_result(text: str, body: dict[str, Any]) -> ParseResult:
    """A parse from Rasa's answer (``intent``, ``intent_ranking``); language and script from
    chatbot.language."""
    intent = body.get("intent") or {}
    ranking = tuple(
        (str(item.get("name")), float(item.get("confidence") or 0.0))
        for item in body.get("intent_ranking") or []
        if isinstance(item, dict)
    )
    found = detect(text)
    return ParseResult(
        intent=str(intent.get("name") or "nlu_fallback") if isinstance(intent, dict) else "nlu_fallback",
        confidence=float(intent.get("confidence") or 0.0) if isinstance(intent, dict) else 0.0,
        language=found.language,
        script=found.script,
        ranking=ranking,
    )
