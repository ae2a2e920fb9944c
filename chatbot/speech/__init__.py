"""Speech for the bot: recognisers behind ``SpeechEngine``, text to speech behind ``Synthesizer``.

Independent of ``contact_center`` (like the rest of ``chatbot``). Audio here is always PCM
16-bit little-endian mono; recognisers take it at ``RATE`` (16 kHz), see ``audio``.
"""

from chatbot.speech.engine import (
    RATE,
    ModelUnavailable,
    Recognizer,
    SpeechEngine,
    SpeechError,
    Utterance,
)

__all__ = [
    "RATE",
    "ModelUnavailable",
    "Recognizer",
    "SpeechEngine",
    "SpeechError",
    "Utterance",
]
