"""Audio plumbing: any PyAV audio frame or WAV file to 16 kHz mono s16 PCM."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import av

from chatbot.speech.engine import RATE, SpeechError


class Resampler16k:
    """PyAV's resampler to 16 kHz mono s16, fed frame by frame (keeps its filter state)."""

    def __init__(self, rate: int = RATE) -> None:
        self.rate = rate
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)

    def convert(self, frame: av.AudioFrame) -> bytes:
        return b"".join(_samples(out) for out in self._resampler.resample(frame))

    def flush(self) -> bytes:
        return b"".join(_samples(out) for out in self._resampler.resample(None))


def _samples(frame: av.AudioFrame) -> bytes:
    # Planes may be over-allocated: take exactly samples x 2 bytes (mono s16).
    return bytes(frame.planes[0])[: frame.samples * 2]


def pcm_frame(pcm: bytes, rate: int, *, layout: str = "mono") -> av.AudioFrame:
    """A PyAV s16 frame holding ``pcm`` (interleaved when ``layout`` is stereo)."""
    channels = 2 if layout == "stereo" else 1
    frame = av.AudioFrame(format="s16", layout=layout, samples=len(pcm) // (2 * channels))
    frame.planes[0].update(pcm[: frame.samples * 2 * channels])
    frame.sample_rate = rate
    return frame


def resample(pcm: bytes, rate: int, *, to: int = RATE) -> bytes:
    """Mono s16 ``pcm`` at ``rate`` to mono s16 at ``to``."""
    if rate == to:
        return pcm
    resampler = Resampler16k(to)
    return resampler.convert(pcm_frame(pcm, rate)) + resampler.flush()


def read_wav(data: bytes | Path) -> tuple[bytes, int]:
    """(mono s16 PCM, sample rate) of a 16-bit PCM WAV; stereo is mixed down by PyAV."""
    raw = data.read_bytes() if isinstance(data, Path) else data
    try:
        with wave.open(io.BytesIO(raw)) as wav:
            width, channels, rate = wav.getsampwidth(), wav.getnchannels(), wav.getframerate()
            pcm = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise SpeechError(f"not a PCM WAV file: {exc}") from None
    if width != 2:
        raise SpeechError(f"need 16-bit samples, the file has {8 * width}-bit")
    if channels == 2:
        resampler = Resampler16k(rate)
        pcm = resampler.convert(pcm_frame(pcm, rate, layout="stereo")) + resampler.flush()
    elif channels != 1:
        raise SpeechError(f"need mono or stereo, the file has {channels} channels")
    return pcm, rate


def rms(pcm: bytes) -> float:
    """Root mean square of s16 samples (0 = digital silence, 32767 = full scale)."""
    if len(pcm) < 2:
        return 0.0
    view = memoryview(pcm[: len(pcm) // 2 * 2]).cast("h")
    return float((sum(s * s for s in view) / len(view)) ** 0.5)
