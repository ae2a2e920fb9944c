"""Issue 13, defects 6 and 7: malformed frames, before and after hello, get an ``error`` and
the connection stays; binary frames count against the rate limit. Data-driven: frames in,
error codes out."""

from __future__ import annotations

import asyncio
import json
import logging

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from contact_center.server.app import create_app
from contact_center.tools.wsclient import SignallingClient


def nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


def nested_object(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def chat(text_json: str, *, id_json: str = '"c1"') -> str:
    return f'{{"v":1,"type":"chat.send","id":{id_json},"contact_id":"nope","text":{text_json}}}'


#: (name, frame, the error's code, the error's ref)
BAD_FRAMES = [
    ("array nested 1000 deep (4 KB)", nested(1000), "bad_frame", None),
    ("array nested 40 deep", nested(40), "bad_frame", None),
    ("a field nested 1000 deep", chat(nested_object(1000)), "bad_frame", None),
    ("a field nested 100 deep", chat(nested_object(100)), "bad_frame", "c1"),
    ("a lone surrogate in id", chat('"hi"', id_json='"\\ud800"'), "bad_frame", None),
    ("a lone low surrogate in text", chat('"a\\udc00b"'), "bad_frame", "c1"),
    ("a surrogate pair the wrong way round", chat('"\\ude00\\ud83d"'), "bad_frame", "c1"),
    ("NUL in text", chat('"a\\u0000b"'), "bad_frame", "c1"),
    ("NUL in id", chat('"hi"', id_json='"c\\u0000"'), "bad_frame", None),
    ("a control character in id is not echoed", chat('"hi"', id_json='"\\u0007"'), "forbidden", None),
    ("an id too long to echo", chat('"hi"', id_json=json.dumps("x" * 65)), "bad_field", None),
    ("not JSON", "{not json", "bad_json", None),
    ("unterminated strings", '"\\"' * 2000, "bad_json", None),
]
#: Frames that look odd but are fine: an escaped backslash before u0000 is not a NUL, and a
#: surrogate pair (what json.dumps writes for an emoji) is one character.
GOOD_TEXTS = ['"a\\\\u0000b"', json.dumps("emoji \U0001f600 ok"), json.dumps(nested(40))]


@pytest.fixture
def no_tracebacks(caplog: pytest.LogCaptureFixture):  # type: ignore[no-untyped-def]
    caplog.set_level(logging.ERROR)
    yield
    ours = [r for r in caplog.records if r.name.startswith(("contact_center", "aiohttp"))]
    assert not [r for r in ours if r.exc_info], [r.getMessage() for r in ours]


@pytest.mark.parametrize(("name", "frame", "code", "ref"), BAD_FRAMES, ids=[c[0] for c in BAD_FRAMES])
async def test_a_bad_frame_after_hello_gets_an_error_and_the_connection_stays(
    server, clients, no_tracebacks, name, frame, code, ref
):
    client = await clients(guest=True)
    await client.send_raw(frame)
    error = await client.wait_for("error")
    assert (error["code"], error.get("ref")) == (code, ref), error
    assert error["message"]
    started = await client.request("session.start", channels=["text"], language="en", skip_bot=True)
    assert started["contact_id"]


@pytest.mark.parametrize("text", GOOD_TEXTS)
async def test_odd_but_valid_text_is_delivered(server, clients, no_tracebacks, text):
    client = await clients(guest=True)
    started = await client.request("session.start", channels=["text"], language="en", skip_bot=True)
    await client.send_raw(
        f'{{"v":1,"type":"chat.send","id":"g","contact_id":"{started["contact_id"]}","text":{text}}}'
    )
    message = await client.wait_for("chat.message")
    assert message["text"] == json.loads(text)


async def _raw_socket(server, http: aiohttp.ClientSession) -> aiohttp.ClientWebSocketResponse:
    async with http.get(server.make_url("/")) as page:  # a guest cookie
        assert page.status == 200
    return await http.ws_connect(server.make_url("/ws"))


@pytest.mark.parametrize(
    ("frame", "code"),
    [(c[1], c[2]) for c in BAD_FRAMES if c[2] not in ("forbidden", "bad_field")]
    + [(json.dumps({"v": 1, "type": "chat.typing", "id": "1", "contact_id": "x"}), "unauthenticated")],
    ids=[c[0] for c in BAD_FRAMES if c[2] not in ("forbidden", "bad_field")] + ["not hello"],
)
async def test_a_bad_frame_before_hello_gets_an_error_and_hello_still_works(
    server, no_tracebacks, frame, code
):
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        ws = await _raw_socket(server, http)
        await ws.send_str(frame)
        error = await ws.receive_json(timeout=5)
        assert (error["type"], error["code"]) == ("error", code), error
        await ws.send_str(json.dumps({"v": 1, "type": "hello", "id": "h"}))
        assert (await ws.receive_json(timeout=5))["type"] == "ack"
        assert (await ws.receive_json(timeout=5))["type"] == "welcome"
        await ws.close()


async def test_before_hello_a_few_bad_frames_then_the_door_closes(server, no_tracebacks):
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        ws = await _raw_socket(server, http)
        for _ in range(5):
            await ws.send_str("{bad")
        codes = []
        async for message in ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            codes.append(json.loads(message.data)["code"])
        assert codes == ["bad_json"] * 5 + ["unauthenticated"], codes
        assert ws.closed and ws.close_code == 1008


async def test_binary_before_hello_is_a_bad_frame(server, no_tracebacks):
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        ws = await _raw_socket(server, http)
        await ws.send_bytes(b"\x00\x01")
        assert (await ws.receive_json(timeout=5))["code"] == "bad_frame"
        await ws.send_str(json.dumps({"v": 1, "type": "hello", "id": "h"}))
        assert (await ws.receive_json(timeout=5))["type"] == "ack"
        await ws.close()


@pytest.fixture
async def strict_server(fast_settings, redis_client):  # type: ignore[no-untyped-def]
    """The production rate limit: 20 messages/s, bursts of 40."""
    settings = fast_settings.model_copy(update={"ws_rate_per_s": 20.0, "ws_burst": 40})
    srv = TestServer(create_app(settings), host="127.0.0.1")
    await srv.start_server()
    yield srv
    await srv.close()


async def test_binary_frames_count_against_the_rate_limit(strict_server):
    client = SignallingClient(str(strict_server.make_url("")))
    await client.as_guest()
    await client.connect()
    try:
        assert client.ws is not None
        for _ in range(200):  # 5x the burst, at once
            await client.ws.send_bytes(b"\x00" * 16)
        await asyncio.sleep(1.0)
        codes = [m["code"] for m in client.seen if m["type"] == "error"]
        assert codes.count("bad_frame") <= 40 + 25, codes.count("bad_frame")  # burst + 1 s of rate
        assert "rate_limited" in codes
    finally:
        await client.close()
