"""``contact-center voice transcribe FILE.wav [--engine vosk|sphinx] [--model PATH] [--phrases FILE]``.

Prints what is said. Vosk needs ``--model``; PocketSphinx uses its bundled en-us model without it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from chatbot.speech.audio import read_wav, resample
from chatbot.speech.engine import BYTES_PER_SECOND, SpeechError, Utterance
from chatbot.speech.phrases import read_phrases
from chatbot.speech.stream import make_engine


def transcribe(wav: Path, model: Path | None, phrases: list[str] | None = None, *,
               verbose: bool = False, engine_name: str = "vosk") -> list[str]:
    """The final utterances of a WAV file (any rate, mono or stereo, 16-bit)."""
    pcm, rate = read_wav(wav)
    pcm = resample(pcm, rate)
    engine = make_engine("en" if engine_name == "sphinx" else "?", engine_name, model)
    if phrases and verbose:
        _, dropped = engine.known_phrases(phrases)
        for phrase in dropped:
            print(f"dropped (outside the vocabulary): {phrase}", file=sys.stderr)
    recognizer = engine.recognizer(phrases or None)
    lines: list[str] = []
    step = BYTES_PER_SECOND // 5
    results: list[Utterance] = []
    for start in range(0, len(pcm), step):
        results.extend(u for u in recognizer.accept(pcm[start:start + step]) if u.final)
    last = recognizer.finish()
    if last is not None:
        results.append(last)
    for u in results:
        lines.append(f"{u.text}\t{u.confidence:.2f}\t{u.mode}" if verbose else u.text)
    return lines


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    voice = sub.add_parser("voice", help="speech recognition")
    vsub = voice.add_subparsers(dest="voice_command", required=True)
    cmd = vsub.add_parser("transcribe", help="print the transcript of a WAV file")
    cmd.add_argument("wav", type=Path)
    cmd.add_argument("--engine", choices=("vosk", "sphinx"), default="vosk",
                     help="vosk (needs --model) or sphinx (the bundled en-us model by default)")
    cmd.add_argument("--model", type=Path, help="a model directory of that engine")
    cmd.add_argument("--phrases", type=Path, help="phrase list, one a line: phrase mode")
    cmd.add_argument("--verbose", "-v", action="store_true",
                     help="also confidence and mode per line; dropped phrases on stderr")
    cmd.set_defaults(func=lambda _settings, args: main_args(args))


def main_args(args: argparse.Namespace) -> int:
    if args.engine == "vosk" and args.model is None:
        print("voice transcribe: the vosk engine needs --model PATH (or use --engine sphinx)",
              file=sys.stderr)
        return 2
    try:
        phrases = read_phrases(args.phrases) if args.phrases else None
        for line in transcribe(args.wav, args.model, phrases, verbose=args.verbose,
                               engine_name=args.engine):
            print(line)
    except (SpeechError, OSError) as exc:
        print(f"voice transcribe: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chatbot.speech.transcribe")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(["voice", *(argv if argv is not None else sys.argv[1:])])
    return int(args.func(None, args))


if __name__ == "__main__":
    sys.exit(main())
