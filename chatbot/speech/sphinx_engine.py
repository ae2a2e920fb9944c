"""PocketSphinx behind ``SpeechEngine``: the English model that ships with PyPI ``pocketsphinx``.

The out-of-the-box English engine (no download): PyPI ``pocketsphinx`` 5.x carries the en-us
acoustic model, the CMU dictionary and a general English language model. The model files are
found and the dictionary read once per process (``load_model``); each session's recogniser has
its own ``Decoder`` (PocketSphinx cannot share one between decoders), made on the first audio it
is fed, so in the worker thread that feeds it, never on the event loop.

Phrase mode adds a JSGF grammar of the phrase list (a phrase with a word outside the dictionary
is dropped and logged, never half-used). PocketSphinx's grammar search always answers with its
best path, complete or not: only a complete listed phrase is a phrase result. Otherwise (a
partial path, or nothing while speech was heard) the utterance's kept audio is decoded freely
with the language model, and that result is marked unsure (the bot asks to say it again).
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatbot.speech.endpoint import MAX_UTTERANCE_S, VAD_SILENCE_S, PeakEndpoint
from chatbot.speech.engine import BYTES_PER_SECOND, RATE, ModelUnavailable, SpeechError, Utterance

log = logging.getLogger(__name__)

#: Below this posterior a free result of a free-only recogniser is unsure.
FREE_MIN_CONFIDENCE = 0.8
PHRASE_SEARCH = "phrases"
FREE_SEARCH = "_default"  # the language model's search, made by the Decoder


@dataclass(frozen=True)
class SphinxModel:
    """The files of one PocketSphinx model, and its dictionary's words."""

    hmm: Path
    dictionary: Path
    lm: Path
    words: frozenset[str]


_models: dict[Path, SphinxModel] = {}
_models_lock = threading.Lock()


def bundled_model_dir() -> Path:
    """The en-us model inside the installed ``pocketsphinx`` package."""
    try:
        import pocketsphinx
    except ImportError as exc:
        raise ModelUnavailable("pocketsphinx is not installed (pip install pocketsphinx)") from exc
    return Path(pocketsphinx.get_model_path()) / "en-us"


def load_model(path: str | os.PathLike[str] | None = None) -> SphinxModel:
    """The model at ``path`` (a directory with an acoustic model dir ``en-us/``, ``*.dict`` and
    ``*.lm.bin``; None: the bundled en-us one), checked and its dictionary read once."""
    where = (Path(path).expanduser() if path is not None else bundled_model_dir()).resolve()
    with _models_lock:
        model = _models.get(where)
        if model is not None:
            return model
        if not where.is_dir():
            raise ModelUnavailable(f"no PocketSphinx model directory at {where}")
        hmm = next((d for d in sorted(where.iterdir()) if (d / "mdef").is_file()), None)
        dictionary = next(iter(sorted(where.glob("*.dict"))), None)
        lm = next((f for f in sorted(where.glob("*.lm.bin")) if "phone" not in f.name), None)
        if hmm is None or dictionary is None or lm is None:
            raise ModelUnavailable(
                f"{where} is not a PocketSphinx model (needs an acoustic model directory with "
                "mdef, a *.dict and a *.lm.bin)")
        try:
            text = dictionary.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise ModelUnavailable(f"cannot read {dictionary}: {exc}") from exc
        words = frozenset(line.split(maxsplit=1)[0].split("(")[0]
                          for line in text.splitlines() if line.strip())
        model = SphinxModel(hmm=hmm, dictionary=dictionary, lm=lm, words=words)
        _models[where] = model
        log.info("speech: PocketSphinx model %s (%d words)", where, len(words))
        return model


def jsgf(phrases: list[str]) -> str:
    """A JSGF grammar whose one public rule is any of ``phrases``."""
    alternatives = " | ".join(f"( {p} )" for p in phrases)
    return f"#JSGF V1.0;\ngrammar phrases;\npublic <phrase> = {alternatives};\n"


class SphinxRecognizer:
    """One session's recogniser: phrase mode with a free fallback, or free only."""

    def __init__(self, model: SphinxModel, phrases: list[str] | None, *, rate: int = RATE,
                 max_utterance_s: float = MAX_UTTERANCE_S,
                 vad_silence_s: float = VAD_SILENCE_S) -> None:
        if rate != RATE:
            raise SpeechError(
                f"PocketSphinx recognisers here take {RATE} Hz PCM, not {rate} Hz: resample")
        self._model = model
        self._phrases = set(phrases or ())
        self._grammar = jsgf(list(dict.fromkeys(phrases))) if phrases else None
        self._decoder: Any = None  # made on first audio, in the feeding thread
        self._max_bytes = int(max_utterance_s * BYTES_PER_SECOND)
        self._vad = PeakEndpoint(vad_silence_s)
        self._audio = bytearray()  # this utterance so far (phrase mode: for the fallback)
        self._last_partial = ""

    def _start(self) -> Any:
        if self._decoder is None:
            import pocketsphinx

            decoder = pocketsphinx.Decoder(
                hmm=str(self._model.hmm), dict=str(self._model.dictionary),
                lm=str(self._model.lm), samprate=RATE, loglevel="FATAL")
            if self._grammar is not None:
                decoder.add_jsgf_string(PHRASE_SEARCH, self._grammar)
                decoder.activate_search(PHRASE_SEARCH)
            decoder.start_utt()
            self._decoder = decoder
        return self._decoder

    def accept(self, pcm: bytes) -> list[Utterance]:
        if len(pcm) % 2:
            raise SpeechError("PCM s16 must have an even number of bytes")
        if not pcm:
            return []
        decoder = self._start()
        self._audio.extend(pcm)
        decoder.process_raw(pcm)
        ended = self._vad.feed(pcm)
        if ended or len(self._audio) >= self._max_bytes:
            if not ended:
                log.info("speech: utterance cut at %.0f s", self._max_bytes / BYTES_PER_SECOND)
            final = self._final()
            return [final] if final is not None else []
        if not self._vad.spoke and self._vad.quiet >= BYTES_PER_SECOND:
            self._restart()  # a second of silence before any speech: nothing to keep
            return []
        hyp = decoder.hyp()
        partial = hyp.hypstr.strip() if hyp is not None else ""
        if partial and partial != self._last_partial:
            self._last_partial = partial
            return [Utterance(text=partial, final=False)]
        return []

    def finish(self) -> Utterance | None:
        if self._decoder is None or not self._vad.spoke:
            return None
        return self._final()

    def _restart(self) -> None:
        decoder = self._decoder
        decoder.end_utt()
        decoder.start_utt()
        self._audio.clear()
        self._vad.reset()
        self._last_partial = ""

    def _final(self) -> Utterance | None:
        decoder = self._decoder
        decoder.end_utt()
        text, confidence = self._result()
        spoke = self._vad.spoke
        audio, self._audio = bytes(self._audio), bytearray()
        self._vad.reset()
        self._last_partial = ""
        try:
            if self._grammar is not None:
                if text in self._phrases:
                    return Utterance(text=text, final=True, confidence=confidence, mode="phrase")
                if not spoke:
                    return None
                # Not a listed phrase: what does free recognition make of the same audio?
                decoder.activate_search(FREE_SEARCH)
                try:
                    decoder.start_utt()
                    decoder.process_raw(audio, full_utt=True)
                    decoder.end_utt()
                    text, confidence = self._result()
                finally:
                    decoder.activate_search(PHRASE_SEARCH)
            if not text:
                return None
            return Utterance(text=text, final=True, confidence=confidence, mode="free",
                             sure=self._grammar is None and confidence >= FREE_MIN_CONFIDENCE)
        finally:
            decoder.start_utt()

    def _result(self) -> tuple[str, float]:
        hyp = self._decoder.hyp()
        if hyp is None:
            return "", 0.0
        return " ".join(hyp.hypstr.split()), float(self._decoder.get_logmath().exp(hyp.prob))


class SphinxEngine:
    """A ``SpeechEngine`` over one PocketSphinx model (the bundled en-us one by default)."""

    name = "sphinx"

    def __init__(self, language: str = "en",
                 model_path: str | os.PathLike[str] | None = None) -> None:
        self.language = language
        self.model = load_model(model_path)

    def known_phrases(self, phrases: list[str]) -> tuple[list[str], list[str]]:
        usable: list[str] = []
        dropped: list[str] = []
        for phrase in dict.fromkeys(p.strip().lower() for p in phrases if p.strip()):
            if all(w in self.model.words for w in phrase.split()):
                usable.append(phrase)
            else:
                dropped.append(phrase)
        if dropped:
            missing = sorted({w for p in dropped for w in p.split() if w not in self.model.words})
            log.warning("speech: %d phrase(s) dropped, words outside the %s dictionary (%s): %s",
                        len(dropped), self.language, ", ".join(missing[:20]),
                        ", ".join(dropped[:10]))
        return usable, dropped

    def recognizer(self, phrases: list[str] | None = None, *, rate: int = RATE,
                   max_utterance_s: float = MAX_UTTERANCE_S,
                   vad_silence_s: float = VAD_SILENCE_S) -> SphinxRecognizer:
        grammar = self.known_phrases(phrases)[0] if phrases else None
        return SphinxRecognizer(self.model, grammar or None, rate=rate,
                                max_utterance_s=max_utterance_s, vad_silence_s=vad_silence_s)
