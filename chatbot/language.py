"""Tell English, Mandarin and Cantonese apart, and simplified from traditional script.

Pure Python without third-party imports and compatible with Python 3.10, because the Rasa action
server (its own 3.10 environment) imports this module too.

Script alone does not decide the language: Hong Kong customers write Cantonese in traditional
characters, but Taiwanese customers write Mandarin in the same script. So we score words and
characters that only written Cantonese uses (係, 唔, 嘅, 咗, 冇, 點樣, 幾多, 搵, 港紙...) against
their Mandarin counterparts (是, 不, 的, 了, 没有, 怎么, 多少, 找, 港币...).

Lines with no marker (or as many of each) go to a character model trained on real text (naive
Bayes over character unigrams and bigrams, HKCanCor against Mandarin corpora; built by
`python -m chatbot.langmodel build` into langmodel.json beside this module). It may only say
Cantonese, and only when sure: its Mandarin side is news and reviews, so its leaning to Mandarin
is mostly topic (funds, loans), and a line it cannot place keeps the conversation's language.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from chatbot._hanzi import SIMPLIFIED_ONLY, TRADITIONAL_ONLY

LANGUAGES = ("en", "zh", "yue")
SCRIPTS = ("latin", "hans", "hant")

# Longest markers first so that a word is not also counted as its single characters
# (each match is blanked out before shorter markers are searched).
_CANTONESE_MARKERS: dict[str, int] = {
    # words (traditional and simplified spellings)
    "點樣": 3, "点样": 3, "點解": 3, "点解": 3, "幾多": 3, "几多": 3, "邊度": 3, "边度": 3,
    "邊個": 3, "边个": 3, "而家": 3, "宜家": 3, "聽日": 3, "听日": 3, "琴日": 3, "尋日": 3,
    "寻日": 3, "今日": 1, "唔該": 3, "唔该": 3, "多謝": 1, "多谢": 1, "港紙": 3, "港纸": 3,
    "人仔": 3, "銀紙": 3, "银纸": 3, "乜嘢": 3, "咩嘢": 3, "乜野": 3, "係咪": 3, "系咪": 3,
    "唔係": 3, "唔系": 3, "係唔係": 3, "有冇": 3, "傾偈": 3, "倾偈": 3, "揾人": 2,
    "我哋": 3, "你哋": 3, "佢哋": 3, "我地": 2, "你地": 2, "佢地": 2, "咁樣": 2, "咁样": 2,
    "幾時": 2, "几时": 2, "幾耐": 3, "几耐": 3, "啱啱": 3, "張卡": 1, "张卡": 1, "睇吓": 3,
    "睇下": 3, "搞掂": 3, "咪住": 2, "冇用": 2, "好似": 1, "嘅": 3,
    "聽朝": 3, "听朝": 3, "聽晚": 3, "听晚": 3, "今朝": 2, "琴晚": 3, "尋晚": 3, "寻晚": 3,
    "早晨": 2, "截數": 2, "截数": 2, "戶口": 1, "买楼": 2, "買樓": 2, "幾高": 3, "几高": 3,
    "幾遠": 3, "几远": 3, "幾貴": 3, "几贵": 3, "幾快": 3, "几快": 3, "幾大": 2, "几大": 2,
    "閂": 3, "闩": 3, "朝早": 3, "話我知": 3, "话我知": 3, "邊間": 3, "边间": 3, "邊位": 3,
    "边位": 3, "邊張": 3, "边张": 3, "轉駁": 3, "转驳": 3, "駁去": 3, "驳去": 3, "哈佬": 2,
    "搵笨": 3, "收工": 2, "返大陸": 2, "返大陆": 2, "返內地": 2, "返内地": 2, "返工": 2,
    # 點 + verb is Cantonese "how to ..." (Mandarin 怎么); 幾點 / 一點 stay neutral
    "點申請": 3, "点申请": 3, "點收費": 3, "点收费": 3, "點整": 3, "点整": 3, "點算": 3,
    "点算": 3, "點處理": 3, "点处理": 3, "點用": 3, "点用": 3, "點做": 3, "点做": 3,
    "點搞": 3, "点搞": 3, "點辦": 3, "点办": 3, "點去": 3, "点去": 3, "點買": 3, "点买": 3,
    # characters that are (almost) only written in Cantonese
    "係": 2, "唔": 3, "咗": 3, "冇": 3, "啲": 3, "佢": 3, "嚟": 3, "喺": 3, "嘢": 3, "哋": 3,
    "睇": 3, "咩": 3, "啱": 3, "攞": 3, "諗": 3, "谂": 3, "畀": 3, "俾": 2, "嘞": 3, "喎": 3,
    "吖": 2, "啩": 3, "晒": 2, "嗮": 3, "搵": 3, "揾": 3, "傾": 2, "倾": 1,
    "咁": 2, "嗰": 3, "噉": 3, "乜": 2, "咪": 1, "㗎": 3, "喇": 1, "嚿": 3, "仲": 1, "冚": 3,
    "啫": 3,
    # 吓 after a verb (查吓, 試吓: Mandarin 一下): HKCanCor has it 105 times in 190k characters,
    # the Mandarin corpora 76 times in 3M (as "scare"); the character model's strongest feature
    # in such lines, but outweighed there by the banking words spoken Cantonese lacks.
    "吓": 2,
}
_MANDARIN_MARKERS: dict[str, int] = {
    "什么": 3, "什麼": 3, "甚麼": 2, "怎么": 3, "怎麼": 3, "怎样": 3, "怎樣": 3, "为什么": 3,
    "為什麼": 3, "多少": 3, "哪里": 3, "哪裡": 3, "哪裏": 3, "哪儿": 3, "哪兒": 3, "这里": 2,
    "這裡": 2, "这个": 2, "這個": 2, "那个": 2, "那個": 2, "现在": 3, "現在": 3, "今天": 3,
    "明天": 3, "昨天": 3, "谢谢": 3, "謝謝": 3, "没有": 3, "沒有": 3, "不是": 3, "是不是": 3,
    "有没有": 3, "有沒有": 3, "我们": 3, "我們": 3, "你们": 3, "你們": 3, "他们": 3, "他們": 3,
    "港币": 2, "港幣": 2, "一下": 1, "聊聊": 3, "知道": 1, "时候": 1, "時候": 1, "怎么办": 3,
    "东西": 2, "東西": 2, "给我": 2, "給我": 2, "想要": 1, "找人": 2,
    "的": 2, "是": 2, "了": 2, "吗": 3, "嗎": 3, "不": 1, "这": 2, "這": 2, "那": 1, "他": 1,
    "她": 1, "找": 2, "看": 2, "给": 2, "給": 2, "在": 1, "吧": 1, "哪": 2, "谁": 2, "誰": 2,
    "说": 1, "說": 1, "掰掰": 2, "喔": 1, "呢": 1, "啊": 1, "丢": 2, "丟": 2, "怎": 2, "么": 1,
    "麼": 1, "儿": 1,
}

# Shared by both languages although one table would claim them ("哈囉" is Taiwan's hello too,
# "幾點" asks the time in both): removed before scoring.
_NEUTRAL = ("哈囉", "哈啰", "幾點", "几点", "一點", "一点")

# Greetings that both languages use but that only the Cantonese corpus is full of (the Mandarin
# one is news and reviews): kept from the model, which would otherwise call 你好 Cantonese.
_MODEL_NEUTRAL = ("你好", "妳好")

MODEL_PATH = Path(__file__).with_name("langmodel.json")
# Log-likelihood ratio (natural log) from which an unmarked line is taken as Cantonese: about e^4
# to one; the corpora's held-out split and the project's held-out sets put it there (BENCHMARKS.md).
MODEL_THRESHOLD = 4.0
# A Mandarin marker lead of at most MARKER_OVERRIDE yields to a model score of at least this.
MARKER_OVERRIDE = 2
MODEL_OVERRIDE_THRESHOLD = 8.0

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f]")
_LATIN = re.compile(r"[A-Za-z]")
_HAN_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f]+")


def features(text: str, t2s: dict[str, str]) -> Iterator[str]:
    """Character unigrams and bigrams of the Han runs in text, reduced to simplified characters."""
    for run in _HAN_RUN.findall(text):
        run = "".join(t2s.get(ch, ch) for ch in run)
        yield from run
        for i in range(len(run) - 1):
            yield run[i : i + 2]


@dataclass(frozen=True)
class CharacterModel:
    """Weights of character unigrams and bigrams: log P(f | yue) / P(f | zh), times scale."""

    weights: dict[str, int]
    t2s: dict[str, str]  # traditional and variant characters to simplified, one to one
    scale: int

    def score(self, text: str) -> float:
        """Log-likelihood ratio of Cantonese over Mandarin (> 0: Cantonese)."""
        return sum(self.weights.get(f, 0) for f in features(text, self.t2s)) / self.scale


@functools.lru_cache(maxsize=1)
def character_model() -> CharacterModel:
    """The model shipped in the package, read once per process."""
    document = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    pairs = document["t2s"]
    t2s = {pairs[i]: pairs[i + 1] for i in range(0, len(pairs), 2)}
    return CharacterModel(document["weights"], t2s, document["scale"])


@dataclass(frozen=True)
class Detection:
    """What one message is written in, and how sure we are."""

    language: str  # "en" | "zh" | "yue"
    script: str  # "latin" | "hans" | "hant"
    cantonese_score: int = 0
    mandarin_score: int = 0
    decided: bool = True  # False when the text had no marker and a prior or default was used
    model_score: float = 0.0  # the character model's log-ratio yue/zh, when markers were even

    @property
    def tag(self) -> str:
        """BCP 47 tag: en, zh-Hans, zh-Hant, yue-Hant, yue-Hans."""
        if self.script == "latin":
            return self.language
        return f"{self.language}-{'Hans' if self.script == 'hans' else 'Hant'}"


def _score(text: str, markers: dict[str, int]) -> int:
    score = 0
    for marker in sorted(markers, key=len, reverse=True):
        count = text.count(marker)
        if count:
            score += count * markers[marker]
            text = text.replace(marker, " " * len(marker))
    return score


def detect_script(text: str, *, prior: str | None = None) -> str:
    """"hans" or "hant" for Chinese text (counting script-specific characters), else "latin"."""
    han = _HAN.findall(text)
    if not han:
        return prior if prior in ("hans", "hant") and _LATIN.search(text) is None else "latin"
    simplified = sum(1 for ch in han if ch in SIMPLIFIED_ONLY)
    traditional = sum(1 for ch in han if ch in TRADITIONAL_ONLY)
    if simplified > traditional:
        return "hans"
    if traditional > simplified:
        return "hant"
    if prior in ("hans", "hant"):
        return prior
    # No telling character (e.g. "你好"): the customer's writing system is unknown; simplified
    # is the more common one, but Cantonese markers below tip it to traditional.
    return "hant" if _score(text, _CANTONESE_MARKERS) > _score(text, _MANDARIN_MARKERS) else "hans"


def detect(text: str, *, prior: str | None = None, prior_script: str | None = None) -> Detection:
    """Detect the language (en, zh, yue) and script of one customer message.

    ``prior`` / ``prior_script`` are the conversation's language and script so far, used when the
    message itself cannot tell (e.g. "你好", "OK", "1234").
    """
    han = len(_HAN.findall(text))
    latin = len(_LATIN.findall(text))
    if han == 0:
        if latin == 0 and prior in LANGUAGES:
            # digits, emoji or punctuation only: keep the conversation's language
            script = prior_script if prior_script in SCRIPTS else ("latin" if prior == "en" else "hans")
            return Detection(prior, script, decided=False)
        return Detection("en", "latin", decided=latin > 0)
    # Chinese characters decide unless they are a stray word in an English sentence.
    if latin > 3 * han and han <= 2:
        return Detection("en", "latin")
    scored = text
    for word in _NEUTRAL:
        scored = scored.replace(word, " ")
    canto = _score(scored, _CANTONESE_MARKERS)
    mando = _score(scored, _MANDARIN_MARKERS)
    script = detect_script(text, prior=prior_script)
    if canto > mando:
        return Detection("yue", script, canto, mando)
    for word in _MODEL_NEUTRAL:
        text = text.replace(word, " ")
    model_score = round(character_model().score(text), 2)
    if mando > canto:
        # a weak Mandarin lead (啊, 呢, 不: spoken Cantonese writes them too) yields to a model
        # that is very sure; a clear one does not
        if mando - canto <= MARKER_OVERRIDE and model_score >= MODEL_OVERRIDE_THRESHOLD:
            return Detection("yue", script, canto, mando, model_score=model_score)
        return Detection("zh", script, canto, mando, model_score=model_score)
    if model_score >= MODEL_THRESHOLD:
        return Detection("yue", script, canto, mando, model_score=model_score)
    if prior in ("zh", "yue"):
        return Detection(prior, script, canto, mando, decided=False, model_score=model_score)
    # Unmarked Chinese: traditional script written in Hong Kong is more likely Cantonese, but
    # without any spoken-Cantonese marker it is formal written Chinese, which we answer in Mandarin.
    return Detection("zh", script, canto, mando, decided=False, model_score=model_score)


def detect_language(text: str, *, prior: str | None = None) -> str:
    """Shortcut for ``detect(text, prior=prior).language``."""
    return detect(text, prior=prior).language
