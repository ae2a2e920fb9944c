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

#: (language, engine name, model path or None: the engine's bundled model) -> a loaded engine
EngineFactory = Callable[[str, str, Path | None], SpeechEngine]
#: The engines a language can be given (CC_VOICE_ENGINES); "none": no voice input.
ENGINES = ("vosk", "sphinx", "none")
#: A language without a model in CC_VOICE_MODELS and not in CC_VOICE_ENGINES gets this engine,
#: with its bundled model: English works out of the box (PocketSphinx ships en-us).
DEFAULT_ENGINES = {"en": "sphinx"}


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


def parse_engines(value: str) -> dict[str, str]:
    """``"en=sphinx,zh=vosk"`` → {language: engine}; raises ValueError on bad items."""
    engines: dict[str, str] = {}
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        language, sep, name = item.partition("=")
        name = name.strip().lower()
        if not sep or not language.strip() or not name:
            raise ValueError(f"{item!r} is not language=engine")
        if name not in ENGINES:
            raise ValueError(f"{item!r}: the engine must be one of {', '.join(ENGINES)}")
        engines[language.strip()] = name
    return engines


def choose_engine(language: str, paths: Mapping[str, Path],
                  engines: Mapping[str, str]) -> tuple[str, Path | None] | None:
    """(engine, model path) of ``language``, None for no voice input.

    CC_VOICE_ENGINES names the engine; else a model in CC_VOICE_MODELS means Vosk; else the
    language's default engine (``DEFAULT_ENGINES``) with its bundled model.
    """
    path = paths.get(language)
    name = engines.get(language) or ("vosk" if path is not None else DEFAULT_ENGINES.get(language))
    if name is None or name == "none":
        return None
    return name, path


def make_engine(language: str, name: str, path: Path | None) -> SpeechEngine:
    if name == "sphinx":
        from chatbot.speech.sphinx_engine import SphinxEngine

        return SphinxEngine(language, path)
    if name == "vosk":
        if path is None:
            raise ModelUnavailable(
                f"the Vosk engine of {language!r} needs a model: CC_VOICE_MODELS={language}=PATH")
        from chatbot.speech.vosk_engine import VoskEngine

        return VoskEngine(language, path)
    raise ModelUnavailable(f"unknown speech engine {name!r} (one of {', '.join(ENGINES)})")


class SpeechModels:
    """The engine of each language (``choose_engine``), loaded on first use (once per process)."""

    def __init__(self, paths: Mapping[str, str | os.PathLike[str]], *,
                 engines: Mapping[str, str] | None = None,
                 factory: EngineFactory = make_engine) -> None:
        self.paths = {lang: Path(p) for lang, p in paths.items()}
        self.engines = dict(engines or {})
        self._factory = factory
        self._engines: dict[str, SpeechEngine] = {}
        self._failed: dict[str, str] = {}
        self._lock = asyncio.Lock()

    def configured(self, language: str) -> bool:
        return (choose_engine(language, self.paths, self.engines) is not None
                and language not in self._failed)

    async def engine(self, language: str) -> SpeechEngine:
        """The engine of ``language``; ``ModelUnavailable`` (with why) when there is none."""
        async with self._lock:
            engine = self._engines.get(language)
            if engine is not None:
                return engine
            if language in self._failed:
                raise ModelUnavailable(self._failed[language])
            choice = choose_engine(language, self.paths, self.engines)
            if choice is None:
                raise ModelUnavailable(f"no speech model configured for language {language!r}")
            try:
                # Loading a model takes seconds (hundreds of MB): never on the loop.
                engine = await asyncio.to_thread(self._factory, language, *choice)
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
