"""chatbot.language: en / zh / yue and simplified / traditional, without Rasa."""

from __future__ import annotations

import pytest

from chatbot.language import detect, detect_language, detect_script


@pytest.mark.parametrize(
    ("text", "language", "script"),
    [
        ("What time do you open on Saturday?", "en", "latin"),
        ("I lost my card", "en", "latin"),
        ("你们几点开门？", "zh", "hans"),
        ("我的信用卡丢了", "zh", "hans"),
        ("美元汇率是多少", "zh", "hans"),
        ("你們幾點開門？", "zh", "hant"),
        ("我的信用卡遺失了，該怎麼辦", "zh", "hant"),
        ("請問美金匯率是多少", "zh", "hant"),
        ("你哋幾點開門呀？", "yue", "hant"),
        ("我張卡唔見咗", "yue", "hant"),
        ("人民幣匯率係幾多", "yue", "hant"),
        ("我想搵真人傾", "yue", "hant"),
        ("匯人仔返大陸要幾耐", "yue", "hant"),
        ("港紙兌美金幾多錢", "yue", "hant"),
        ("你哋点样收费", "yue", "hans"),  # Cantonese written in simplified (Guangzhou)
        ("我冇钱喇", "yue", "hans"),
    ],
)
def test_detects_language_and_script(text: str, language: str, script: str) -> None:
    found = detect(text)
    assert (found.language, found.script) == (language, script), found


def test_tags_follow_bcp47() -> None:
    assert detect("hello").tag == "en"
    assert detect("我的卡丢了").tag == "zh-Hans"
    assert detect("我的卡丟了").tag == "zh-Hant"
    assert detect("我張卡唔見咗").tag == "yue-Hant"


def test_cantonese_markers_beat_script() -> None:
    # same script, different language: 係/幾多 (Cantonese) against 是/多少 (Mandarin)
    assert detect_language("匯率係幾多") == "yue"
    assert detect_language("匯率是多少") == "zh"


def test_a_common_mandarin_time_question_is_not_cantonese() -> None:
    # 幾點 (what time) is shared by both; only Cantonese-specific words tip the balance
    assert detect_language("几点开门") == "zh"


def test_unmarked_message_keeps_the_conversation_language() -> None:
    found = detect("你好", prior="yue", prior_script="hant")
    assert (found.language, found.script, found.decided) == ("yue", "hant", False)
    assert detect("1234", prior="zh", prior_script="hant").tag == "zh-Hant"
    assert detect("OK").language == "en"


def test_unmarked_chinese_without_prior_defaults_to_mandarin() -> None:
    found = detect("你好")
    assert found.language == "zh" and not found.decided


def test_a_stray_chinese_word_in_english_stays_english() -> None:
    assert detect_language("Can I remit RMB to my account in 深圳 today?") == "en"


def test_script_of_latin_text() -> None:
    assert detect_script("hello") == "latin"
    assert detect_script("銀行") == "hant"
    assert detect_script("银行") == "hans"


def test_module_has_no_third_party_imports() -> None:
    """The action server (Python 3.10, another env) imports it: stdlib and chatbot only."""
    import ast
    import sys
    from pathlib import Path

    import chatbot.language as module

    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            top = name.split(".")[0]
            assert top in sys.stdlib_module_names or top in ("chatbot", "__future__"), name
