"""Saying "not now" to the other party's upgrade: they are told at once, may ask again later,
and the decline is in the contact's timeline."""

from __future__ import annotations

import pytest

from contact_center import appkeys
from contact_center.tools.wsclient import RequestFailed
from recordings.timeline import read_timeline
from tests.contacts.test_calls import _connect_call, _until


def _declines(folder) -> list[dict]:  # type: ignore[no-untyped-def, type-arg]
    if not (folder / "timeline.jsonl").exists():
        return []
    return [e for e in read_timeline(folder).events if e["kind"] == "upgrade_declined"]


async def test_not_now_tells_the_asker_who_may_ask_again(server, clients, advisor_factory):
    customer, advisor, contact_id = await _connect_call(clients, advisor_factory, channels=("text",))
    folder = server.app[appkeys.SETTINGS].recordings_dir / contact_id

    # nothing was asked: nothing to decline
    with pytest.raises(RequestFailed) as nothing:
        await advisor.request("session.upgrade_decline", contact_id=contact_id, channel="voice")
    assert nothing.value.code == "invalid_state"
    assert "has not asked for voice" in nothing.value.message

    assert (await customer.request("session.upgrade", contact_id=contact_id, channel="voice")) == {"agreed": False}
    await advisor.wait_for("session.upgrade", contact_id=contact_id, channel="voice", by="customer")
    # the asker cannot decline their own request; text is no upgrade; fields are checked
    with pytest.raises(RequestFailed) as own:
        await customer.request("session.upgrade_decline", contact_id=contact_id, channel="voice")
    assert own.value.code == "invalid_state"
    with pytest.raises(RequestFailed) as bad:
        await advisor.request("session.upgrade_decline", contact_id=contact_id, channel="text")
    assert "channel" in bad.value.message
    with pytest.raises(RequestFailed):
        await advisor.request("session.upgrade_decline", contact_id=contact_id)

    assert (await advisor.request("session.upgrade_decline", contact_id=contact_id, channel="voice")) == {}
    told = await customer.wait_for("session.upgrade_declined", contact_id=contact_id)
    assert told["by"] == "advisor" and told["channel"] == "voice"
    with pytest.raises(RequestFailed) as twice:  # declined already
        await advisor.request("session.upgrade_decline", contact_id=contact_id, channel="voice")
    assert twice.value.code == "invalid_state"
    await _until(lambda: len(_declines(folder)) == 1)
    entry = _declines(folder)[0]
    assert entry["channel"] == "voice" and entry["by"] == "advisor"

    # the advisor agreeing now does not complete the declined request: the customer asks again
    assert (await advisor.request("session.upgrade", contact_id=contact_id, channel="voice")) == {"agreed": False}
    await customer.wait_for("session.upgrade", contact_id=contact_id, channel="voice", by="advisor")
    assert (await customer.request("session.upgrade", contact_id=contact_id, channel="voice")) == {"agreed": True}
    state = await customer.wait_for("session.state", contact_id=contact_id, reason="upgraded")
    assert "voice" in state["channels"]
