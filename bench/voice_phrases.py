"""Which of the bot's English training phrases PocketSphinx's bundled model hears right.

    python -m bench.voice_phrases [--voices en,en-us] [--rates 150,175] [--start 0] [--limit 40]

Each phrase is said by espeak-ng (each voice, each rate) and fed in 100 ms chunks to a fresh
recogniser whose grammar is the whole English training list (as the server runs it). Counts per
voice and rate: right, no phrase (decoded freely and marked unsure: the customer is asked
again), a wrong listed phrase (acted on: the harmful case). The phrases right in every
condition are listed. The last line is JSON. About 0.5 s per phrase and condition here: the
defaults (40 phrases, 2 conditions) take about 40 s; ``--start`` covers the rest in steps.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from chatbot.speech.audio import read_wav, resample
from chatbot.speech.engine import BYTES_PER_SECOND
from chatbot.speech.phrases import training_phrases
from chatbot.speech.sphinx_engine import SphinxEngine


def said(text: str, voice: str, rate: int) -> bytes:
    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate), "--stdout", text],
                         capture_output=True, check=True, timeout=30).stdout
    pcm, wav_rate = read_wav(wav)
    return resample(pcm, wav_rate) + b"\0\0" * int(16000 * 0.6)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.voice_phrases")
    parser.add_argument("--voices", default="en,en-us")
    parser.add_argument("--rates", default="175")
    parser.add_argument("--start", type=int, default=0, help="the first usable phrase to say")
    parser.add_argument("--limit", type=int, default=40, help="how many phrases to say")
    args = parser.parse_args(argv)
    engine = SphinxEngine("en")
    phrases = training_phrases("en")
    usable = engine.known_phrases(phrases)[0][args.start:args.start + args.limit]
    conditions = [(v, int(r)) for v in args.voices.split(",") for r in args.rates.split(",")]
    counts = {f"{v} {r}": {"right": 0, "no_phrase": 0, "wrong_phrase": 0} for v, r in conditions}
    always = []
    for phrase in usable:
        right = 0
        for voice, rate in conditions:
            rec = engine.recognizer(phrases)
            pcm = said(phrase, voice, rate)
            heard = []
            for start in range(0, len(pcm), BYTES_PER_SECOND // 10):
                heard.extend(u for u in rec.accept(pcm[start:start + BYTES_PER_SECOND // 10])
                             if u.final)
            last = rec.finish()
            heard.extend([last] if last is not None else [])
            listed = [u.text for u in heard if u.mode == "phrase"]
            key = counts[f"{voice} {rate}"]
            if listed == [phrase]:
                key["right"] += 1
                right += 1
            elif listed:
                key["wrong_phrase"] += 1
            else:
                key["no_phrase"] += 1
        if right == len(conditions):
            always.append(phrase)
        print(f"{right}/{len(conditions)} {phrase}", file=sys.stderr, flush=True)
    print(json.dumps({"phrases": len(usable), "dropped": len(phrases) - len(engine.known_phrases(
        phrases)[0]), "counts": counts, "right_in_all": always}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
