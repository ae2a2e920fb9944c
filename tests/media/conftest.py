"""Fixtures for media tests: real aiortc peers over loopback, nothing mocked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from contact_center.media.call import CallMedia, Party
from contact_center.media.ice import IceSettings
from contact_center.media.synthetic import SyntheticPeer

Negotiate = Callable[[CallMedia, Party, SyntheticPeer], Awaitable[None]]


@pytest.fixture
def ice() -> IceSettings:
    return IceSettings.loopback()


@pytest.fixture
def negotiate() -> Negotiate:
    """Offer from ``peer``, answer through ``call`` as ``party``, apply the answer."""

    async def run(call: CallMedia, party: Party, peer: SyntheticPeer) -> None:
        await peer.accept_answer(await call.answer(party, await peer.offer()))

    return run


@pytest.fixture
async def call_pair(
    ice: IceSettings, negotiate: Negotiate
) -> AsyncIterator[tuple[CallMedia, SyntheticPeer, SyntheticPeer, list[tuple[str, str, str]]]]:
    """A CallMedia with a connected customer and advisor (audio+video), closed afterwards."""
    events: list[tuple[str, str, str]] = []
    call = CallMedia("pair", ice, on_event=lambda *event: events.append(event))
    customer = SyntheticPeer(ice, name="customer")
    advisor = SyntheticPeer(ice, name="advisor")
    try:
        await negotiate(call, "customer", customer)
        await negotiate(call, "advisor", advisor)
        async with asyncio.timeout(10):
            await customer.wait_connected()
            await advisor.wait_connected()
        yield call, customer, advisor, events
    finally:
        await call.close()
        await customer.close()
        await advisor.close()


async def wait_for(predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    """Poll ``predicate`` every 20 ms until true; fail the test after ``seconds``."""
    async with asyncio.timeout(seconds):
        # Polling on purpose: the conditions are plain counters updated by media tasks.
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


@pytest.fixture
def until() -> Callable[..., Awaitable[None]]:
    return wait_for
