"""Fixtures for recording tests: real aiortc peers over loopback (the tests/media pattern)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from contact_center.media.call import CallMedia, Party
from contact_center.media.ice import IceSettings
from contact_center.media.synthetic import SyntheticPeer

Negotiate = Callable[[CallMedia, Party, SyntheticPeer], Awaitable[None]]


@pytest.fixture
def ice() -> IceSettings:
    return IceSettings.loopback()


async def negotiate(call: CallMedia, party: Party, peer: SyntheticPeer) -> None:
    """Offer from ``peer``, answer through ``call`` as ``party``, apply the answer."""
    await peer.accept_answer(await call.answer(party, await peer.offer()))


async def wait_for(predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    """Poll ``predicate`` every 20 ms until true; fail the test after ``seconds``."""
    async with asyncio.timeout(seconds):
        while not predicate():
            await asyncio.sleep(0.02)
