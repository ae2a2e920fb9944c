"""Async side of recognition: models per language, and a recogniser fed in a worker thread."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from chatbot.speech.engine import ModelUnavailable, Recognizer, SpeechEngine, Utterance

log = logging.getLogger(__name__)

EngineFactory = Callable[[str, Path], SpeechEngine]


def parse_models(value: str) -> dict[str, Path]:
    """``"en=/models/en,ko=/models/ko"`` → {language: path}; raises ValueError on bad items."""
    models: dict[str, Path] = {}
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        language, sep, path = item.partition("=")
        if not sep or not language.strip() or not path.strip():
            raise ValueError(f"{item!r} is not language=path")
        models[language.strip()] = Path(path.strip()).expanduser()
    return models


def _vosk_engine(language: str, path: Path) -> SpeechEngine:
    from chatbot.speech.vosk_engine import VoskEngine

    return VoskEngine(language, path)


class SpeechModels:
    """The configured model of each language, loaded on first use (once per process)."""

    def __init__(self, paths: Mapping[str, str | os.PathLike[str]], *,
                 factory: EngineFactory = _vosk_engine) -> None:
        self.paths = {lang: Path(p) for lang, p in paths.items()}
        self._factory = factory
        self._engines: dict[str, SpeechEngine] = {}
        self._failed: dict[str, str] = {}
        self._lock = asyncio.Lock()

    def configured(self, language: str) -> bool:
        return language in self.paths and language not in self._failed

    async def engine(self, language: str) -> SpeechEngine:
        """The engine of ``language``; ``ModelUnavailable`` (with why) when there is none."""
        async with self._lock:
            engine = self._engines.get(language)
            if engine is not None:
                return engine
            if language in self._failed:
                raise ModelUnavailable(self._failed[language])
            path = self.paths.get(language)
            if path is None:
                raise ModelUnavailable(f"no speech model configured for language {language!r}")
            try:
                # Loading a model takes seconds (hundreds of MB): never on the loop.
                engine = await asyncio.to_thread(self._factory, language, path)
            except ModelUnavailable as exc:
                self._failed[language] = str(exc)
                log.error("speech: %s", exc)
                raise
            self._engines[language] = engine
            return engine


class RecognitionStream:
    """One session's recogniser, fed in order in a thread of its own (never on the loop)."""

    def __init__(self, recognizer: Recognizer, *, name: str = "speech") -> None:
        self.recognizer = recognizer
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._closed = False

    async def feed(self, pcm: bytes) -> list[Utterance]:
        if self._closed:
            return []
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.recognizer.accept, pcm)

    async def finish(self) -> Utterance | None:
        if self._closed:
            return None
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.recognizer.finish)

    def close(self) -> None:
        """Stop taking audio; a chunk being decoded finishes in its thread. Idempotent."""
        if not self._closed:
            self._closed = True
            self._pool.shutdown(wait=False, cancel_futures=True)
