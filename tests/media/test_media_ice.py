"""ICE settings: explicit (possibly empty) servers, host candidates restricted to loopback."""

from __future__ import annotations

import asyncio

import aioice.ice
import pytest
from pydantic import ValidationError

from contact_center.media import ice as ice_module
from contact_center.media.call import CallMedia
from contact_center.media.ice import (
    IceSettings,
    host_addresses,
    install_host_address_hook,
    restricted_gathering,
    rtc_configuration,
)
from contact_center.tools.synthetic import SyntheticPeer


def candidate_lines(sdp: str) -> list[str]:
    return [line for line in sdp.splitlines() if line.startswith("a=candidate:")]


def test_settings_validate_urls_and_addresses() -> None:
    with pytest.raises(ValidationError):
        IceSettings(ice_servers=["http://stun.example.com"])
    with pytest.raises(ValidationError):
        IceSettings(host_addresses=["localhost"])
    with pytest.raises(ValidationError):
        IceSettings(host_addresses=[])
    assert IceSettings.loopback().host_addresses == ["127.0.0.1"]


def test_configuration_always_lists_servers_explicitly() -> None:
    assert rtc_configuration(IceSettings()).iceServers == []
    settings = IceSettings(
        ice_servers=["stun:stun.example.com:3478", "turn:turn.example.com:3478?transport=udp"],
        username="user",
        credential="secret",
    )
    stun, turn = rtc_configuration(settings).iceServers or []
    assert (stun.urls, stun.username) == ("stun:stun.example.com:3478", None)
    assert (turn.username, turn.credential) == ("user", "secret")


def test_host_addresses_filters_ip_versions() -> None:
    addresses = ("127.0.0.1", "::1", "10.0.0.2")
    assert host_addresses(True, False, addresses) == ["127.0.0.1", "10.0.0.2"]
    assert host_addresses(False, True, addresses) == ["::1"]


async def test_restriction_is_scoped_to_its_context() -> None:
    install_host_address_hook()
    install_host_address_hook()  # idempotent
    assert aioice.ice.get_host_addresses is ice_module._hooked_host_addresses
    assert len(ice_module._original) == 1

    outside: list[list[str]] = []
    inside_started = asyncio.Event()
    release = asyncio.Event()

    async def unrestricted() -> None:
        await inside_started.wait()
        outside.append(aioice.ice.get_host_addresses(True, False))
        release.set()

    # Enumerating interfaces sends nothing on the network.
    task = asyncio.create_task(unrestricted())
    with restricted_gathering(IceSettings.loopback()):
        inside_started.set()
        assert aioice.ice.get_host_addresses(True, True) == ["127.0.0.1"]
        await release.wait()
    await task
    # aioice itself never offers 127.0.0.1: the other task saw aioice's own answer.
    assert "127.0.0.1" not in outside[0]
    assert aioice.ice.get_host_addresses(True, False) == outside[0]


async def test_offer_and_answer_carry_only_loopback_host_candidates(ice: IceSettings) -> None:
    call = CallMedia("ice-check", ice)
    peer = SyntheticPeer(ice, name="customer")
    try:
        offer = await peer.offer()
        answer = await call.answer("customer", offer)
        for sdp in (offer, answer):
            lines = candidate_lines(sdp)
            assert lines
            for line in lines:
                fields = line.split()
                assert fields[4] == "127.0.0.1", line
                assert fields[6:8] == ["typ", "host"], line
            assert "srflx" not in sdp and "relay" not in sdp
    finally:
        await call.close()
        await peer.close()


def test_hook_refuses_an_unreviewed_aioice(monkeypatch: pytest.MonkeyPatch) -> None:
    install_host_address_hook()
    monkeypatch.setattr(aioice.ice, "get_host_addresses", ice_module._original[0])
    monkeypatch.setattr(ice_module, "_original", [])
    monkeypatch.setattr(aioice, "__version__", "0.14.0")
    with pytest.raises(RuntimeError, match="0.14.0"):
        install_host_address_hook()
    assert aioice.ice.get_host_addresses is not ice_module._hooked_host_addresses
