"""Text to speech behind ``Synthesizer``; ``EspeakSynthesizer`` runs the espeak-ng program.

Synthesis runs in a worker thread (``synthesize`` is a coroutine that never blocks the loop) and
each (voice, text) is made once per process: the bot says the same few lines again and again.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from chatbot.speech.audio import read_wav
from chatbot.speech.engine import SpeechError

#: espeak-ng voice of each bot language (chatbot.language codes), Korean for the tests.
VOICES = {"en": "en-us", "zh": "cmn", "yue": "yue", "ko": "ko"}
MAX_TEXT = 2000  # characters: a reply longer than this is cut (about two minutes of speech)


@dataclass(frozen=True)
class Speech:
    """Synthesised speech: mono s16 PCM at ``rate``."""

    pcm: bytes
    rate: int

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 2 / self.rate


class Synthesizer(Protocol):
    """Turns a reply into speech in one of the bot's languages."""

    name: str

    def languages(self) -> frozenset[str]: ...

    async def synthesize(self, text: str, language: str) -> Speech: ...


class EspeakSynthesizer:
    """espeak-ng (Debian package ``espeak-ng``), with an LRU cache of what it said."""

    name = "espeak-ng"

    def __init__(self, *, program: str = "espeak-ng", cache_size: int = 256,
                 words_per_minute: int = 175) -> None:
        found = shutil.which(program)
        if found is None:
            raise SpeechError(f"{program} is not installed (Debian: apt-get install espeak-ng)")
        self.program = found
        self.words_per_minute = words_per_minute
        self._cache: OrderedDict[tuple[str, str], Speech] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self.synthesised = 0  # runs of the program (cache misses), for tests and the bench

    def languages(self) -> frozenset[str]:
        return frozenset(VOICES)

    def synthesize_sync(self, text: str, language: str) -> Speech:
        voice = VOICES.get(language)
        if voice is None:
            raise SpeechError(f"no espeak-ng voice for language {language!r}")
        text = " ".join(text.split())[:MAX_TEXT]
        key = (voice, text)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        try:
            done = subprocess.run(
                [self.program, "-v", voice, "-s", str(self.words_per_minute), "--stdout", "--", text],
                capture_output=True, check=True, timeout=60,
            )
        except subprocess.CalledProcessError as exc:
            raise SpeechError(f"espeak-ng failed: {exc.stderr.decode(errors='replace')[:200]}") from exc
        except subprocess.TimeoutExpired as exc:
            raise SpeechError("espeak-ng took longer than 60 s") from exc
        pcm, rate = read_wav(done.stdout)
        speech = Speech(pcm, rate)
        with self._lock:
            self.synthesised += 1
            self._cache[key] = speech
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return speech

    async def synthesize(self, text: str, language: str) -> Speech:
        return await asyncio.to_thread(self.synthesize_sync, text, language)
