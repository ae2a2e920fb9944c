"""The trained bot end to end: a real Rasa server, action server and model."""

from __future__ import annotations

import subprocess
import uuid

import aiohttp
import pytest
import yaml

from chatbot import env
from chatbot._hanzi import SIMPLIFIED_ONLY, TRADITIONAL_ONLY
from chatbot.client import RasaClient
from chatbot.handoff import split_bot_messages

pytestmark = pytest.mark.rasa

BANK = yaml.safe_load((env.RASA_DIR / "actions" / "bank_data.yaml").read_text(encoding="utf-8"))


def sender() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def test_rasa_data_validate_is_clean(rasa_paths: env.RasaPaths) -> None:
    assert rasa_paths.env_dir is not None
    result = subprocess.run(
        [str(rasa_paths.env_dir / "bin" / "python"), "-m", "rasa", "data", "validate",
         "--domain", "domain.yml", "--data", "data", "--config", "config.yml", "--fail-on-warnings"],
        cwd=env.RASA_DIR, env=env.rasa_environ(), capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.mark.parametrize(
    ("text", "intent", "language"),
    [
        ("What time do you open on Saturday?", "ask_opening_hours", "en"),
        ("I lost my credit card", "report_lost_card", "en"),
        ("can I speak to a human please", "request_human", "en"),
        ("美元汇率是多少", "ask_fx_rate", "zh"),
        ("我要投诉你们的服务", "complaint", "zh"),
        ("匯款到大陸要多久", "ask_remittance", "zh"),
        ("我想申請貸款", "ask_loan", "zh"),
        ("你哋幾點開門呀", "ask_opening_hours", "yue"),
        ("我張卡唔見咗", "report_lost_card", "yue"),
        ("我戶口仲有幾多錢", "ask_account_balance", "yue"),
    ],
)
async def test_parse_per_language(rasa_client: RasaClient, text: str, intent: str,
                                  language: str) -> None:
    result = await rasa_client.parse(text)
    assert (result.intent, result.language) == (intent, language), result
    assert result.confidence > 0.5


async def test_gibberish_is_not_a_banking_intent(rasa_client: RasaClient) -> None:
    result = await rasa_client.parse("qwop zxcv blarg")
    assert result.intent in ("out_of_scope", "nlu_fallback")


async def test_one_turn_answers_and_says_what_it_understood(rasa_client: RasaClient) -> None:
    """The contact center's channel: the bot's reply and the line's parse from one NLU pass,
    the same parse that /model/parse gives."""
    line = "你哋星期六開到幾點呀？"
    conversation = sender()
    messages, parsed = await rasa_client.turn(conversation, line, metadata={"language": "yue"})
    texts, handoff = split_bot_messages(messages)
    assert handoff is None and BANK["opening_hours"]["saturday"] in "".join(texts)
    alone = await rasa_client.parse(line)
    assert parsed is not None and parsed.language == "yue"
    assert (parsed.intent, round(parsed.confidence, 3)) == (alone.intent, round(alone.confidence, 3))
    assert parsed.ranking[0][0] == alone.ranking[0][0]
    # the channel's parse is the one the conversation keeps (Rasa did not parse the line again)
    async with aiohttp.ClientSession() as http, http.get(
            f"{rasa_client.base_url}/conversations/{conversation}/tracker") as resp:
        tracker = await resp.json()
    said = [e for e in tracker["events"] if e["event"] == "user"]
    assert [e["text"] for e in said] == [line]
    assert said[0]["parse_data"]["intent"]["name"] == parsed.intent
    assert said[0]["parse_data"]["metadata"] == {"language": "yue"}
    assert round(said[0]["parse_data"]["intent"]["confidence"], 3) == round(parsed.confidence, 3)


async def test_cantonese_opening_hours_answered_from_data_in_traditional(rasa_client: RasaClient) -> None:
    texts, handoff = split_bot_messages(await rasa_client.send(sender(), "你哋星期六開到幾點呀？"))
    assert handoff is None
    answer = "".join(texts)
    hours = BANK["opening_hours"]
    assert hours["weekdays"] in answer and hours["saturday"] in answer
    assert "我哋" in answer and "係" in answer  # Cantonese, not Mandarin
    assert set(answer) & TRADITIONAL_ONLY and not set(answer) & SIMPLIFIED_ONLY


async def test_mandarin_simplified_fx_rate_from_data(rasa_client: RasaClient) -> None:
    texts, _ = split_bot_messages(await rasa_client.send(sender(), "今天美元汇率是多少？"))
    answer = "".join(texts)
    usd = BANK["fx"]["rates"]["USD"]
    assert usd["buy"] in answer and usd["sell"] in answer and BANK["fx"]["as_of"] in answer
    assert "EUR" not in answer  # only the currency asked about
    assert set(answer) & SIMPLIFIED_ONLY and not set(answer) & TRADITIONAL_ONLY


async def test_traditional_mandarin_remittance_stays_traditional(rasa_client: RasaClient) -> None:
    texts, _ = split_bot_messages(await rasa_client.send(sender(), "匯款到中國大陸的手續費是多少？"))
    answer = "".join(texts)
    assert str(BANK["remittance"]["fee_online_hkd"]) in answer
    assert "80,000" in answer
    assert set(answer) & TRADITIONAL_ONLY and not set(answer) & SIMPLIFIED_ONLY


async def test_request_human_in_cantonese_hands_off(rasa_client: RasaClient) -> None:
    sid = sender()
    await rasa_client.send(sid, "你好")
    texts, handoff = split_bot_messages(await rasa_client.send(sid, "我想搵真人傾，唔該"))
    assert handoff is not None and texts
    assert handoff.language == "yue"
    assert handoff.intent == "request_human"
    assert handoff.skills == {"general": 1}
    assert [t.role for t in handoff.transcript] == ["customer", "bot", "customer"]
    assert handoff.transcript[0].text == "你好"
    assert handoff.transcript[-1].intent == "request_human"


async def test_handoff_after_a_topic_routes_to_its_skill(rasa_client: RasaClient) -> None:
    sid = sender()
    await rasa_client.send(sid, "What's the exchange rate for the euro?")
    _, handoff = split_bot_messages(await rasa_client.send(sid, "let me talk to an agent"))
    assert handoff is not None
    assert (handoff.language, handoff.skills) == ("en", {"fx": 1})


async def test_lost_card_is_urgent(rasa_client: RasaClient) -> None:
    texts, handoff = split_bot_messages(await rasa_client.send(sender(), "我的信用卡被偷了"))
    assert handoff is not None
    assert (handoff.language, handoff.skills, handoff.priority) == ("zh", {"cards": 1}, 10)
    assert BANK["bank"]["lost_card_hotline"] in "".join(texts)


async def test_two_fallbacks_in_a_row_hand_off(rasa_client: RasaClient) -> None:
    sid = sender()
    texts, handoff = split_bot_messages(await rasa_client.send(sid, "asdkjh qwpoeiru"))
    assert handoff is None and texts
    texts, handoff = split_bot_messages(await rasa_client.send(sid, "zzzz blorp"))
    assert handoff is not None
    assert handoff.intent == "nlu_fallback" and handoff.skills == {"general": 1}
    assert len([t for t in handoff.transcript if t.role == "customer"]) == 2


async def test_a_good_answer_resets_the_fallback_count(rasa_client: RasaClient) -> None:
    sid = sender()
    await rasa_client.send(sid, "asdkjh qwpoeiru")
    await rasa_client.send(sid, "what are your opening hours")
    _, handoff = split_bot_messages(await rasa_client.send(sid, "zzzz blorp"))
    assert handoff is None


async def test_unmarked_message_keeps_the_metadata_language(rasa_client: RasaClient) -> None:
    # "你好" could be Mandarin or Cantonese; the channel said the session is Cantonese
    texts, _ = split_bot_messages(
        await rasa_client.send(sender(), "你好", metadata={"language": "yue", "script": "hant"})
    )
    assert "我係" in "".join(texts)
