"""Fixtures for media tests: real aiortc peers over loopback, nothing mocked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from contact_center.media.call import CallMedia, Party
from contact_center.media.ice import IceSettings
from contact_center.tools.synthetic import SyntheticPeer
from tests.helpers import negotiate as exchange_sdp
from tests.helpers import wait_for

Negotiate = Callable[[CallMedia, Party, SyntheticPeer], Awaitable[None]]


@pytest.fixture
def negotiate() -> Negotiate:
    """Offer from ``peer``, answer through ``call`` as ``party``, apply the answer."""
    return exchange_sdp


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


@pytest.fixture
def until() -> Callable[..., Awaitable[None]]:
    return wait_for
