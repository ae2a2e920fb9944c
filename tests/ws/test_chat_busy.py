"""Overload of the chat writer is refused ``busy`` at once, nothing stored, never a silent
timeout; the same line sent again later (same id) is stored once."""

from __future__ import annotations

import asyncio

import pytest

from contact_center import appkeys
from contact_center.contacts import store
from contact_center.db.engine import transaction
from contact_center.tools.wsclient import RequestFailed, SignallingClient


@pytest.fixture
def fast_settings(fast_settings):  # type: ignore[no-untyped-def]
    return fast_settings.model_copy(update={"chat_max_pending": 2})


async def _until(condition) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0.01)


async def test_a_line_beyond_the_waiting_limit_is_refused_busy_and_stored_once_when_sent_again(
    server, monkeypatch
):
    gate, entered = asyncio.Event(), asyncio.Event()
    write = store.add_chat_messages

    async def held_write(*args, **kwargs):  # type: ignore[no-untyped-def]
        entered.set()
        await gate.wait()  # the database is slow: the first batch takes its time
        return await write(*args, **kwargs)

    monkeypatch.setattr(store, "add_chat_messages", held_write)
    writer = server.app[appkeys.CONTACTS].chat_writer
    clients = [SignallingClient(str(server.make_url(""))) for _ in range(4)]
    try:
        contacts = []
        for client in clients:
            await client.as_guest()
            await client.connect()
            started = await client.request(
                "session.start", channels=["text"], language="en", skip_bot=True
            )
            contacts.append(started["contact_id"])

        def send(n: int, request_id: str) -> asyncio.Task[dict]:
            return asyncio.create_task(
                clients[n].request(
                    "chat.send", contact_id=contacts[n], text=f"line {n}", request_id=request_id
                )
            )

        first = send(0, "busy-0")  # taken by the writer, held in its transaction
        await asyncio.wait_for(entered.wait(), 10)
        waiting = [send(1, "busy-1"), send(2, "busy-2")]  # the two the limit lets wait
        await _until(lambda: writer.waiting == 2)
        with pytest.raises(RequestFailed) as refused:
            await clients[3].request(
                "chat.send", contact_id=contacts[3], text="line 3", request_id="busy-3"
            )
        assert refused.value.code == "busy"
        assert "waiting to be stored" in refused.value.message
        gate.set()
        acks = [await first] + [await task for task in waiting]
        assert [ack["seq"] for ack in acks] == [1, 1, 1]
        async with transaction(server.app[appkeys.DB]) as session:
            assert await store.chat_history(session, contact_id=contacts[3]) == []
        again = await clients[3].request(
            "chat.send", contact_id=contacts[3], text="line 3", request_id="busy-3"
        )
        assert again["seq"] == 1
        async with transaction(server.app[appkeys.DB]) as session:
            lines = await store.chat_history(session, contact_id=contacts[3])
        assert [(m.seq, m.text, m.request_id) for m in lines] == [(1, "line 3", "busy-3")]
    finally:
        gate.set()
        for client in clients:
            await client.close()


async def test_at_a_slow_pace_a_line_behind_a_batch_is_busy_and_a_lone_line_is_taken(
    server, monkeypatch
):
    """The pace is learnt from batches written, so it must not refuse a line with nothing
    ahead of it (or one slow batch would refuse every later line for good); a line that would
    wait behind a batch at that pace is refused."""
    from contact_center.contacts import chat_writer

    gate, entered = asyncio.Event(), asyncio.Event()
    write = store.add_chat_messages

    async def held_write(*args, **kwargs):  # type: ignore[no-untyped-def]
        entered.set()
        await gate.wait()
        return await write(*args, **kwargs)

    writer = server.app[appkeys.CONTACTS].chat_writer
    clients = [SignallingClient(str(server.make_url(""))) for _ in range(2)]
    try:
        contacts = []
        for client in clients:
            await client.as_guest()
            await client.connect()
            started = await client.request(
                "session.start", channels=["text"], language="en", skip_bot=True
            )
            contacts.append(started["contact_id"])
        writer._batch_seconds = chat_writer.MAX_WAIT_S * 10  # batches lately took 20 s each
        alone = await clients[0].request("chat.send", contact_id=contacts[0], text="alone")
        assert alone["seq"] == 1
        writer._batch_seconds = chat_writer.MAX_WAIT_S * 10  # as learnt, not the fast one
        monkeypatch.setattr(store, "add_chat_messages", held_write)
        first = asyncio.create_task(
            clients[0].request("chat.send", contact_id=contacts[0], text="held")
        )
        await asyncio.wait_for(entered.wait(), 10)
        with pytest.raises(RequestFailed) as refused:
            await clients[1].request("chat.send", contact_id=contacts[1], text="behind")
        assert refused.value.code == "busy"
        gate.set()
        assert (await first)["seq"] == 2
    finally:
        gate.set()
        for client in clients:
            await client.close()
