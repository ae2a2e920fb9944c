"""Bot NLU accuracy on the held-out set: `python -m bench.bot_nlu [--rasa-url URL]`.

Reads chatbot/tests_heldout*.yml (never used for training), classifies every utterance with the
running Rasa server (or one started here, see chatbot.classify.rasa_server) and reports, per
language and script, intent accuracy and language identification accuracy. The last line is JSON.
An utterance of out_of_scope counts as right when the NLU fallback fires instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from chatbot.classify import rasa_server
from chatbot.client import RasaClient

CHATBOT = Path(__file__).resolve().parent.parent / "chatbot"
# A: written with the first training data; B: written after the second round, measured once
HELDOUT = [CHATBOT / "tests_heldout.yml", CHATBOT / "tests_heldout_b.yml"]
EXPECTED_LANGUAGE = {"en": "en", "zh-Hans": "zh", "zh-Hant": "zh", "yue": "yue"}
EXPECTED_SCRIPT = {"en": "latin", "zh-Hans": "hans", "zh-Hant": "hant", "yue": "hant"}


async def evaluate(url: str, heldout: dict[str, dict[str, list[str]]]) -> dict[str, Any]:
    """Classify every held-out utterance; return the figures and the misses."""
    report: dict[str, Any] = {"languages": {}, "misses": []}
    totals: Counter[str] = Counter()
    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        client = RasaClient(url, session=session, timeout=30)
        for variant, intents in heldout.items():
            counts: Counter[str] = Counter()
            for intent, texts in intents.items():
                for text in texts:
                    result = await client.parse(text)
                    right = result.intent == intent or (
                        intent == "out_of_scope" and result.intent == "nlu_fallback")
                    counts["n"] += 1
                    counts["intent"] += right
                    counts["language"] += result.language == EXPECTED_LANGUAGE[variant]
                    counts["script"] += result.script == EXPECTED_SCRIPT[variant]
                    if not right or result.language != EXPECTED_LANGUAGE[variant]:
                        report["misses"].append({
                            "variant": variant, "text": text, "expected": intent,
                            "got": result.intent, "confidence": round(result.confidence, 3),
                            "language": result.language, "script": result.script})
            report["languages"][variant] = {
                "n": counts["n"],
                "intent_accuracy": round(counts["intent"] / counts["n"], 4),
                "language_accuracy": round(counts["language"] / counts["n"], 4),
                "script_accuracy": round(counts["script"] / counts["n"], 4),
            }
            totals.update(counts)
    report["overall"] = {
        "n": totals["n"],
        "intent_accuracy": round(totals["intent"] / totals["n"], 4),
        "language_accuracy": round(totals["language"] / totals["n"], 4),
        "ms_per_parse": round(1000 * (time.perf_counter() - started) / totals["n"], 1),
    }
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bot_nlu", description=__doc__.split("\n")[0])
    parser.add_argument("--rasa-url", help="a running Rasa server; default: start one")
    parser.add_argument("--heldout", type=Path, action="append",
                        help="held-out YAML file (repeatable); default: both batches")
    args = parser.parse_args(argv)
    files: list[Path] = args.heldout or HELDOUT
    heldout: dict[str, dict[str, list[str]]] = {}
    for file in files:
        for variant, intents in yaml.safe_load(file.read_text(encoding="utf-8")).items():
            for intent, texts in intents.items():
                heldout.setdefault(variant, {}).setdefault(intent, []).extend(texts)
    with rasa_server(args.rasa_url) as url:
        report = asyncio.run(evaluate(url, heldout))
    for miss in report["misses"]:
        print(f"miss {miss['variant']:8} {miss['expected']:>20} -> {miss['got']:<20} "
              f"{miss['confidence']:.2f} lang={miss['language']} {miss['text']}")
    print(f"held-out: {', '.join(f.name for f in files)}")
    print(f"{'variant':8} {'n':>4} {'intent':>7} {'lang':>7} {'script':>7}")
    for variant, row in report["languages"].items():
        print(f"{variant:8} {row['n']:4} {row['intent_accuracy']:7.1%} "
              f"{row['language_accuracy']:7.1%} {row['script_accuracy']:7.1%}")
    overall = report["overall"]
    print(f"{'all':8} {overall['n']:4} {overall['intent_accuracy']:7.1%} "
          f"{overall['language_accuracy']:7.1%}   ({overall['ms_per_parse']} ms/parse)")
    print(json.dumps({"bench": "bot_nlu", "heldout": [f.name for f in files],
                      "languages": report["languages"], "overall": overall,
                      "misses": len(report["misses"])}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
