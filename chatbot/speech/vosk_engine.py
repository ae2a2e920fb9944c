"""Vosk (Kaldi) behind ``SpeechEngine``: a model loaded once per process, a recogniser per session.

Phrase mode gives the recogniser a grammar (the phrase list, JSON with ``ensure_ascii=False``:
escaped non-ASCII words would not match the vocabulary and be dropped silently). Each phrase is
checked against the model's vocabulary first; a phrase with an unknown word is dropped and
logged, never half-used. When the phrase result is unsure (low confidence, or nothing matched
while audio was heard) a free recogniser fed the same audio decides instead.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from chatbot.speech.endpoint import MAX_UTTERANCE_S, VAD_SILENCE_S, PeakEndpoint
from chatbot.speech.engine import (
    BYTES_PER_SECOND,
    RATE,
    ModelUnavailable,
    SpeechError,
    Utterance,
)

log = logging.getLogger(__name__)

#: Below this mean word confidence a phrase result is "unsure": the free result is used
#: instead, and the utterance is marked so that the bot can ask again.
PHRASE_MIN_CONFIDENCE = 0.8

#: Trailing silence (s) after which Kaldi ends an utterance (its endpoint rule 2, for a decoded
#: utterance that is already a good match). The small models ship 0.5 s; Kaldi's decoder also
#: lags the audio (its right context), so an utterance ended about 1.0 s after the last word
#: (0.8 s with 0.3). None: the model's own setting.
ENDPOINT_SILENCE_S: float | None = 0.3
#: Our own endpoint (``endpoint.PeakEndpoint``), whichever comes first, ends the utterance at once
#: (``FinalResult`` flushes the decoder); in a noisy room the audio never falls below its peak and
#: Kaldi's rule (which knows silence phones) still ends it.
_RULE2 = "--endpoint.rule2.min-trailing-silence="

_models: dict[tuple[Path, float | None], Any] = {}
_models_lock = threading.Lock()


def _vosk() -> Any:
    import vosk

    vosk.SetLogLevel(-1)  # Kaldi logs to stderr otherwise; we log what matters ourselves
    return vosk


def load_model(path: str | os.PathLike[str], *,
               endpoint_silence_s: float | None = ENDPOINT_SILENCE_S) -> Any:
    """The ``vosk.Model`` at ``path``, loaded once per process and shared by all sessions.

    With ``endpoint_silence_s`` the model is loaded through a view of its directory whose
    ``conf/model.conf`` ends an utterance after that much trailing silence (Vosk 0.3.45 reads it
    only there, and cannot change it per recogniser); the model's files are not touched.
    """
    where = Path(path).expanduser().resolve()
    key = (where, endpoint_silence_s)
    with _models_lock:
        model = _models.get(key)
        if model is not None:
            return model
        if not where.is_dir():
            raise ModelUnavailable(f"no Vosk model directory at {where}")
        if not os.access(where, os.R_OK | os.X_OK) or not (where / "am" / "final.mdl").is_file():
            raise ModelUnavailable(
                f"{where} is not a readable Vosk model (needs am/final.mdl and graph/)"
            )
        # Vosk reads every file while it loads: the view is needed only meanwhile.
        with tempfile.TemporaryDirectory(prefix="vosk-view-") as tmp:
            source = where if endpoint_silence_s is None else _endpointing_view(
                where, endpoint_silence_s, Path(tmp))
            try:
                model = _vosk().Model(str(source))
            except Exception as exc:  # vosk raises a bare Exception("Failed to create a model")
                raise ModelUnavailable(f"Vosk cannot load the model at {where}: {exc}") from exc
        _models[key] = model
        log.info("speech: Vosk model %s loaded (endpoint silence %s s)", where,
                 endpoint_silence_s if endpoint_silence_s is not None else "as shipped")
        return model


def _endpointing_view(where: Path, silence_s: float, into: Path) -> Path:
    """``where`` seen through symlinks, with its conf/model.conf's rule 2 set to ``silence_s``."""
    conf = where / "conf" / "model.conf"
    if not conf.is_file():
        return where  # not a model with Kaldi endpoint options: as it is
    lines = [line for line in conf.read_text(encoding="utf-8").splitlines()
             if not line.startswith(_RULE2)]
    view = into / where.name
    view.mkdir()
    for entry in where.iterdir():
        if entry.name != "conf":
            (view / entry.name).symlink_to(entry)
    (view / "conf").mkdir()
    for entry in (where / "conf").iterdir():
        if entry.name != "model.conf":
            (view / "conf" / entry.name).symlink_to(entry)
    (view / "conf" / "model.conf").write_text(
        "\n".join([*lines, f"{_RULE2}{silence_s:g}"]) + "\n", encoding="utf-8")
    return view


def _mean_confidence(result: dict[str, Any]) -> float:
    words = result.get("result") or []
    if not words:
        return 0.0
    return sum(float(w.get("conf", 0.0)) for w in words) / len(words)


class VoskRecognizer:
    """One session's recogniser: phrase mode with a free fallback, or free only.

    In phrase mode only the grammar recogniser runs live (it also finds the utterance's end);
    the utterance's audio is kept (at most ``max_utterance_s``) and decoded freely only when
    the phrase result is unsure, so a session costs one decoder, not two.
    """

    def __init__(self, model: Any, grammar: list[str] | None, *, rate: int = RATE,
                 max_utterance_s: float = MAX_UTTERANCE_S,
                 vad_silence_s: float | None = VAD_SILENCE_S) -> None:
        if rate != RATE:
            raise SpeechError(f"Vosk recognisers here take {RATE} Hz PCM, not {rate} Hz: resample")
        vosk = _vosk()
        self._model = model
        self._free = vosk.KaldiRecognizer(model, RATE)
        self._free.SetWords(True)
        self._phrase = None
        if grammar:
            # "[unk]" lets the grammar say "none of these"; not every model has it.
            unk = ["[unk]"] if model.vosk_model_find_word("[unk]") >= 0 else []
            self._phrase = vosk.KaldiRecognizer(
                model, RATE, json.dumps([*grammar, *unk], ensure_ascii=False)
            )
            self._phrase.SetWords(True)
        self._live = self._phrase if self._phrase is not None else self._free
        self._max_bytes = int(max_utterance_s * BYTES_PER_SECOND)
        self._audio = bytearray()  # this utterance so far (phrase mode: for the fallback)
        self._pending = 0  # bytes fed since the last final
        self._last_partial = ""
        # None: Kaldi's endpointing alone
        self._vad = None if vad_silence_s is None else PeakEndpoint(vad_silence_s)

    def accept(self, pcm: bytes) -> list[Utterance]:
        if len(pcm) % 2:
            raise SpeechError("PCM s16 must have an even number of bytes")
        self._pending += len(pcm)
        if self._phrase is not None:
            self._audio.extend(pcm)
        ended = self._live.AcceptWaveform(pcm)
        if self._vad is not None and self._vad.feed(pcm):
            ended = True  # our endpoint: FinalResult below flushes the decoder
        if ended and self._vad is not None:
            self._vad.reset()
        if ended or self._pending >= self._max_bytes:
            final = self._final(cut=not ended)
            return [final] if final is not None else []
        partial = json.loads(self._live.PartialResult()).get("partial", "")
        if partial and partial != self._last_partial:
            self._last_partial = partial
            return [Utterance(text=partial, final=False)]
        return []

    def finish(self) -> Utterance | None:
        return self._final(cut=False) if self._pending else None

    def _final(self, *, cut: bool) -> Utterance | None:
        result = json.loads(self._live.FinalResult())
        audio, self._audio = bytes(self._audio), bytearray()
        self._pending, self._last_partial = 0, ""
        if cut:
            log.info("speech: utterance cut at %.0f s", self._max_bytes / BYTES_PER_SECOND)
        if self._phrase is not None:
            text = " ".join(w["word"] for w in result.get("result") or [] if w["word"] != "[unk]")
            confidence = _mean_confidence(result)
            if text and confidence >= PHRASE_MIN_CONFIDENCE:
                return Utterance(text=text, final=True, confidence=confidence, mode="phrase")
            if not text and not result.get("result"):
                return None  # silence or noise: nothing to say
            # Unsure: what would free recognition make of the same audio?
            self._free.AcceptWaveform(audio)
            result = json.loads(self._free.FinalResult())
        text = str(result.get("text") or "").strip()
        if not text:
            return None
        confidence = _mean_confidence(result)
        return Utterance(text=text, final=True, confidence=confidence, mode="free",
                         sure=self._phrase is None and confidence >= PHRASE_MIN_CONFIDENCE)


class VoskEngine:
    """A ``SpeechEngine`` over one Vosk model directory."""

    name = "vosk"

    def __init__(self, language: str, model_path: str | os.PathLike[str], *,
                 endpoint_silence_s: float | None = ENDPOINT_SILENCE_S) -> None:
        self.language = language
        self.model_path = Path(model_path)
        self.model = load_model(model_path, endpoint_silence_s=endpoint_silence_s)

    def known_phrases(self, phrases: list[str]) -> tuple[list[str], list[str]]:
        usable: list[str] = []
        dropped: list[str] = []
        for phrase in dict.fromkeys(p.strip() for p in phrases if p.strip()):
            words = phrase.split()
            if all(self.model.vosk_model_find_word(w) >= 0 for w in words):
                usable.append(phrase)
            else:
                dropped.append(phrase)
        if dropped:
            log.warning("speech: %d phrase(s) dropped, words outside the %s model's vocabulary: %s",
                        len(dropped), self.language, ", ".join(dropped[:10]))
        return usable, dropped

    def recognizer(self, phrases: list[str] | None = None, *, rate: int = RATE,
                   max_utterance_s: float = MAX_UTTERANCE_S,
                   vad_silence_s: float | None = VAD_SILENCE_S) -> VoskRecognizer:
        grammar = self.known_phrases(phrases)[0] if phrases else None
        return VoskRecognizer(self.model, grammar, rate=rate, max_utterance_s=max_utterance_s,
                              vad_silence_s=vad_silence_s)
