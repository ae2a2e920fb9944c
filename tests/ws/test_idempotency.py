"""A retried request id gets the first answer: no second chat line, no second contact."""

from __future__ import annotations

import json

from contact_center.tools.wsclient import SignallingClient


async def _raw(client: SignallingClient, request_id: str, type_: str, **fields: object) -> dict:
    await client.send_raw(json.dumps({"v": 1, "type": type_, "id": request_id, **fields}))
    return await client.wait_for("ack", ref=request_id)


async def test_retries_of_start_and_chat_send_return_the_first_answer(server):
    from contact_center import appkeys
    from contact_center.contacts import store
    from contact_center.db.engine import transaction

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
        # the ack follows the line's commit and publish; its delivery through the bus may come
        # a moment after the ack (wait_for takes the message it finds: put it back)
        again.seen.append(await again.wait_for("chat.message", contact_id=contact_id, seq=2))
        history = [m for m in again.seen if m["type"] == "chat.message"]
        # line 1 replayed on connect (and published again by its retry: clients place lines
        # by seq, so it is shown once), 2 live; each stored once
        assert sorted({m["seq"] for m in history}) == [1, 2]
        assert {m["seq"]: m["text"] for m in history} == {1: "lost my card", 2: "lost my card"}
        async with transaction(server.app[appkeys.DB]) as session:
            lines = await store.chat_history(session, contact_id=contact_id)
        assert [(m.seq, m.request_id) for m in lines] == [(1, "chat-7f3a-1"), (2, "chat-7f3a-2")]
    finally:
        await again.close()
        await first.close()


async def test_a_retried_line_is_stored_once_even_when_redis_forgot_the_first_answer(server):
    """The first try stored the line, then its instance died before answering (or Redis lost
    everything): the database knows the request id, so the retry is that line. ``chat.send``
    keeps no answer in Redis at all: the database is its only memory of a request."""
    from contact_center import appkeys, redis_keys
    from contact_center.contacts import store
    from contact_center.db.engine import transaction

    client = SignallingClient(str(server.make_url("")))
    try:
        await client.as_guest()
        await client.connect()
        started = await client.request("session.start", channels=["text"], language="en",
                                       skip_bot=True)
        contact_id = started["contact_id"]
        sent = await _raw(client, "chat-9b1c-1", "chat.send", contact_id=contact_id, text="hello")
        redis = server.app[appkeys.REDIS]
        deleted = 0
        async for key in redis.scan_iter(match=redis_keys.client_request("*", "chat-9b1c-1")):
            deleted += await redis.delete(key)
        assert deleted == 0  # nothing reserved in Redis (ws.handlers.STORE_IDEMPOTENT)
        again = await _raw(client, "chat-9b1c-1", "chat.send", contact_id=contact_id, text="hello")
        assert again["data"]["seq"] == sent["data"]["seq"] == 1
        async with transaction(server.app[appkeys.DB]) as session:
            lines = await store.chat_history(session, contact_id=contact_id)
        assert [(m.seq, m.text, m.request_id) for m in lines] == [(1, "hello", "chat-9b1c-1")]
    finally:
        await client.close()


async def test_a_retried_start_gets_its_contact_even_when_redis_forgot_the_first_answer(server):
    """Not ``already_started``: the contact the first try created is the answer."""
    from contact_center import appkeys, redis_keys

    client = SignallingClient(str(server.make_url("")))
    try:
        await client.as_guest()
        await client.connect()
        start = {"channels": ["text"], "language": "en", "skip_bot": True}
        first = await _raw(client, "start-5e2d", "session.start", **start)
        redis = server.app[appkeys.REDIS]
        async for key in redis.scan_iter(match=redis_keys.client_request("*", "start-5e2d")):
            await redis.delete(key)
        again = await _raw(client, "start-5e2d", "session.start", **start)
        assert again["data"]["contact_id"] == first["data"]["contact_id"]
        other = json.dumps({"v": 1, "type": "session.start", "id": "start-5e2e", **start})
        await client.send_raw(other)
        refused = await client.wait_for("error", ref="start-5e2e")
        assert refused["code"] == "already_started"  # a new request is still one too many
    finally:
        await client.close()
