"""A retried request id gets the first answer: no second chat line, no second contact."""

from __future__ import annotations

import json

from contact_center.tools.wsclient import SignallingClient


async def _raw(client: SignallingClient, request_id: str, type_: str, **fields: object) -> dict:
    await client.send_raw(json.dumps({"v": 1, "type": type_, "id": request_id, **fields}))
    return await client.wait_for("ack", ref=request_id)


async def test_retries_of_start_and_chat_send_return_the_first_answer(server):
    first = SignallingClient(str(server.make_url("")))
    again = SignallingClient(str(server.make_url("")), session=first.http)
    try:
        await first.as_guest()
        await first.connect()
        start = {"channels": ["text"], "language": "en", "skip_bot": True}
        started = await _raw(first, "start-7f3a", "session.start", **start)
        contact_id = started["data"]["contact_id"]
        line = {"contact_id": contact_id, "text": "lost my card"}
        sent = await _raw(first, "chat-7f3a-1", "chat.send", **line)
        # the client lost the socket before the answers arrived, reconnects and retries both
        await again.connect()
        assert (await _raw(again, "start-7f3a", "session.start", **start)) == started
        assert (await _raw(again, "chat-7f3a-1", "chat.send", **line)) == sent
        assert (await _raw(again, "chat-7f3a-2", "chat.send", **line))["data"]["seq"] == 2
        history = [m for m in again.seen if m["type"] == "chat.message"]
        assert [m["seq"] for m in history] == [1, 2]  # line 1 replayed on connect, 2 live
    finally:
        await again.close()
        await first.close()
