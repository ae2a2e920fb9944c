"""The interface every speech recogniser implements, and what it hands back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

#: Recognisers take PCM 16-bit mono at this rate (``audio.Resampler16k`` makes it).
RATE = 16000
BYTES_PER_SECOND = RATE * 2

Mode = Literal["phrase", "free"]


class SpeechError(RuntimeError):
    """Speech cannot be recognised or synthesised as asked (the message says why)."""


class ModelUnavailable(SpeechError):
    """No usable model: the path is missing, unreadable or not a model of this engine."""


@dataclass(frozen=True)
class Utterance:
    """What was heard: a partial (live caption) or a final result of one utterance."""

    text: str
    final: bool
    confidence: float = 0.0  # mean word confidence, 0..1 (0 for partials)
    mode: Mode = "free"  # "phrase" when the phrase list decided, "free" otherwise
    sure: bool = True  # False: the bot should ask again rather than act on it


class Recognizer(Protocol):
    """One session's recogniser. Not thread-safe: one thread feeds it (``stream``)."""

    def accept(self, pcm: bytes) -> list[Utterance]:
        """Feed 16 kHz mono s16 PCM; return the partials and finals it produced."""
        ...

    def finish(self) -> Utterance | None:
        """End the stream: the last utterance, if any words were pending."""
        ...


class SpeechEngine(Protocol):
    """A loaded speech model for one language that makes recognisers."""

    name: str
    language: str

    def recognizer(self, phrases: list[str] | None = None) -> Recognizer:
        """A new recogniser; ``phrases`` turns on phrase (grammar) mode with free fallback."""
        ...

    def known_phrases(self, phrases: list[str]) -> tuple[list[str], list[str]]:
        """``phrases`` split into (usable, dropped: a word outside the model's vocabulary)."""
        ...
