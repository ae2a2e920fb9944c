"""Where an utterance ends: a loud frame starts speech, then this much quiet audio ends it.

Shared by the recognisers (each also has its own decoder endpointing). The peak, not the RMS:
max() over the samples runs in C, a Python sum of squares cost 5 % of a stream.
"""

from __future__ import annotations

from chatbot.speech.engine import BYTES_PER_SECOND

#: Once speech was heard (a 20 ms frame peaking above SPEECH_PEAK), this much audio below it ends
#: the utterance. Pauses between the words of a phrase are shorter.
VAD_SILENCE_S = 0.3
SPEECH_PEAK = 1000  # about -30 dBFS
#: An utterance longer than this is cut (a monologue must not grow the decoder without bound).
MAX_UTTERANCE_S = 20.0
FRAME_BYTES = BYTES_PER_SECOND // 50  # 20 ms


class PeakEndpoint:
    """Tracks speech and the quiet after it over 16 kHz s16 PCM fed in order."""

    def __init__(self, silence_s: float = VAD_SILENCE_S) -> None:
        self.silence_bytes = int(silence_s * BYTES_PER_SECOND)
        self.spoke = False  # a loud frame since the last reset
        self.quiet = 0  # bytes of quiet audio since the last loud frame

    def feed(self, pcm: bytes) -> bool:
        """Take ``pcm``; True once speech was heard and then ``silence_s`` of quiet."""
        samples = memoryview(pcm).cast("h")
        step = FRAME_BYTES // 2
        for start in range(0, len(samples), step):
            frame = samples[start:start + step]
            if max(frame) >= SPEECH_PEAK or -min(frame) >= SPEECH_PEAK:
                self.spoke, self.quiet = True, 0
            else:
                self.quiet += 2 * len(frame)
        return self.spoke and self.quiet >= self.silence_bytes

    def reset(self) -> None:
        self.spoke, self.quiet = False, 0
