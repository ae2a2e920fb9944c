"""ICE settings: which STUN/TURN servers to use and which local addresses may become candidates.

aiortc gathers every address of the machine (except loopback) and, unless told otherwise, asks a
public STUN server. Neither is acceptable in tests (loopback only) nor on servers whose addresses
are chosen by the operator. Two levers:

* ``rtc_configuration`` always passes ``iceServers`` explicitly (possibly empty), so aiortc never
  falls back to its default public STUN server.
* host candidates: aioice 0.13.0 gathers them from the module function
  ``aioice.ice.get_host_addresses(use_ipv4, use_ipv6)``, called inside
  ``Connection.gather_candidates``. ``install_host_address_hook`` replaces that function, once per
  process, by ``_hooked_host_addresses``, which returns the addresses of the
  ``restricted_gathering`` context currently active and otherwise defers to aioice's own
  function. aiortc gathers inside ``RTCPeerConnection.setLocalDescription`` through
  ``asyncio.gather``, whose tasks copy the caller's context, so the restriction applies to the
  peer connections whose ``setLocalDescription`` runs inside the ``with`` block and to no other.
  The hook checks the aioice version and the function's signature and refuses to install on
  anything else: a new aioice must be reviewed against this module (and its test) first.
"""

from __future__ import annotations

import contextvars
import inspect
import ipaddress
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import aioice
import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer
from pydantic import BaseModel, ConfigDict, Field, field_validator

logger = logging.getLogger(__name__)

PINNED_AIOICE_VERSION = "0.13.0"

HostAddressFunction = Callable[[bool, bool], list[str]]

# The addresses of the innermost ``restricted_gathering`` block; None outside any block.
_restricted: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar(
    "contact_center_media_ice_host_addresses", default=None
)
# aioice's own function, kept by the hook so that unrestricted gathering is unchanged.
_original: list[HostAddressFunction] = []


class IceSettings(BaseModel):
    """How the media layer's peer connections find their ICE candidates."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ice_servers: list[str] = Field(default_factory=list)
    """``stun:host:port``, ``turn:host:port?transport=udp`` or ``turns:`` URLs."""
    username: str | None = None
    """TURN username, used for every ``turn:``/``turns:`` URL."""
    credential: str | None = None
    """TURN password, used for every ``turn:``/``turns:`` URL."""
    host_addresses: list[str] | None = None
    """When set, the only local IPs offered as host candidates (tests: ``["127.0.0.1"]``)."""

    @field_validator("ice_servers")
    @classmethod
    def _check_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.startswith(("stun:", "turn:", "turns:")):
                raise ValueError(f"ICE server URL must start with stun:, turn: or turns: ({url!r})")
        return urls

    @field_validator("host_addresses")
    @classmethod
    def _check_addresses(cls, addresses: list[str] | None) -> list[str] | None:
        if addresses is not None:
            if not addresses:
                raise ValueError("host_addresses must be None (all) or a non-empty list")
            for address in addresses:
                ipaddress.ip_address(address)  # raises ValueError on a name or garbage
        return addresses

    @classmethod
    def loopback(cls) -> IceSettings:
        """Loopback only and no STUN/TURN: for tests and benchmarks."""
        return cls(ice_servers=[], host_addresses=["127.0.0.1"])


def rtc_configuration(settings: IceSettings) -> RTCConfiguration:
    """The aiortc configuration for ``settings``; ``iceServers`` is always explicit."""
    servers = []
    for url in settings.ice_servers:
        if url.startswith("stun:"):
            servers.append(RTCIceServer(urls=url))
        else:
            servers.append(
                RTCIceServer(urls=url, username=settings.username, credential=settings.credential)
            )
    return RTCConfiguration(iceServers=servers)


def host_addresses(use_ipv4: bool, use_ipv6: bool, addresses: tuple[str, ...]) -> list[str]:
    """The given addresses that match the requested IP versions, in order."""
    chosen = []
    for address in addresses:
        version = ipaddress.ip_address(address).version
        if (version == 4 and use_ipv4) or (version == 6 and use_ipv6):
            chosen.append(address)
    return chosen


def _hooked_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    restricted = _restricted.get()
    if restricted is None:
        return _original[0](use_ipv4, use_ipv6)
    return host_addresses(use_ipv4, use_ipv6, restricted)


def install_host_address_hook() -> None:
    """Route aioice's host-address discovery through this module (once per process)."""
    current = aioice.ice.get_host_addresses
    if current is _hooked_host_addresses:
        return
    if aioice.__version__ != PINNED_AIOICE_VERSION:
        raise RuntimeError(
            f"aioice {aioice.__version__} is not the reviewed {PINNED_AIOICE_VERSION}: check that "
            "Connection.gather_candidates still calls aioice.ice.get_host_addresses, then update "
            "contact_center/media/ice.py"
        )
    if list(inspect.signature(current).parameters) != ["use_ipv4", "use_ipv6"]:
        raise RuntimeError("aioice.ice.get_host_addresses changed signature; review ice.py")
    _original.append(current)
    aioice.ice.get_host_addresses = _hooked_host_addresses
    logger.info("aioice host-address discovery hooked (aioice %s)", aioice.__version__)


@contextmanager
def restricted_gathering(settings: IceSettings) -> Iterator[None]:
    """Inside this block, ICE gathering offers only ``settings.host_addresses`` (if set)."""
    if settings.host_addresses is None:
        yield
        return
    install_host_address_hook()
    token = _restricted.set(tuple(settings.host_addresses))
    try:
        yield
    finally:
        _restricted.reset(token)
