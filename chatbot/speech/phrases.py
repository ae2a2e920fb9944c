"""Phrase lists for phrase (grammar) mode, built from the bot's own training examples."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

NLU_DIR = Path(__file__).resolve().parent.parent / "rasa" / "data" / "nlu"
#: The training files of each bot language (chatbot.language codes).
FILES = {"en": ("en.yml",), "zh": ("zh_hans.yml", "zh_hant.yml"), "yue": ("yue.yml",)}

_ENTITY = re.compile(r"\[([^\]]+)\]\([^)]*\)|\[([^\]]+)\]\{[^}]*\}")
_PUNCT = re.compile(r"[^\w\s']+")


def normalise(example: str) -> str:
    """An example as a recogniser would hear it: entity markup gone, no punctuation, lower."""
    text = _ENTITY.sub(lambda m: m.group(1) or m.group(2), example)
    return " ".join(_PUNCT.sub(" ", text).lower().split())


def training_phrases(language: str, nlu_dir: Path = NLU_DIR) -> list[str]:
    """Every training example of ``language``, normalised, without duplicates, in file order."""
    phrases: dict[str, None] = {}
    for name in FILES.get(language, ()):
        data = yaml.safe_load((nlu_dir / name).read_text(encoding="utf-8")) or {}
        for block in data.get("nlu") or []:
            for line in str(block.get("examples") or "").splitlines():
                line = line.strip()
                if line.startswith("- "):
                    phrase = normalise(line[2:])
                    if phrase:
                        phrases[phrase] = None
    return list(phrases)


def read_phrases(path: Path) -> list[str]:
    """A phrase file: one phrase a line, ``#`` comments and blank lines ignored."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
