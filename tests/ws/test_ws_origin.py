"""Issue 13, defect 5: ``/ws`` accepts a browser's socket only from our own pages' origin."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from contact_center.server.app import create_app
from contact_center.tools.wsclient import SignallingClient


async def _open(base: str, origin: str | None) -> tuple[int, dict | None]:
    """Sign in as a guest, then open /ws sending ``origin``: (HTTP status, welcome)."""
    client = SignallingClient(base)
    try:
        await client.as_guest()
        headers = {"Origin": origin} if origin is not None else {}
        try:
            ws = await client.http.ws_connect(base.replace("http", "ws", 1) + "/ws", headers=headers)
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status, None
        await ws.send_json({"v": 1, "type": "hello", "id": "h"})
        ack = await ws.receive_json(timeout=5)
        welcome = await ws.receive_json(timeout=5)
        await ws.close()
        assert ack["type"] == "ack"
        return 101, welcome
    finally:
        await client.close()


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "null",
        "http://127.0.0.1.evil.example",
        "https://127.0.0.1:{port}",  # another scheme
        "http://127.0.0.1:1",  # another port
        "http://localhost:{port}",  # another host name for the same machine
        "http://127.0.0.1:{port}/path",  # not an origin at all
    ],
)
async def test_a_foreign_origin_is_refused_even_with_a_valid_cookie(server, fast_settings, origin):
    status, _ = await _open(str(server.make_url("")), origin.format(port=fast_settings.port))
    assert status == 403


@pytest.mark.parametrize("origin", ["{base}", "{base_upper}", None])
async def test_our_own_origin_and_clients_without_one_are_accepted(server, fast_settings, origin):
    base = fast_settings.public_base_url
    given = origin.format(base=base, base_upper=base.upper()) if origin else None
    status, welcome = await _open(str(server.make_url("")), given)
    assert status == 101 and welcome and welcome["type"] == "welcome"


async def test_extra_origins_come_from_a_setting(fast_settings, redis_client):
    settings = fast_settings.model_copy(
        update={"allowed_origins": ["https://app.harbour.example", "https://kiosk.harbour.example:8443"]}
    )
    srv = TestServer(create_app(settings), host="127.0.0.1", port=settings.port)
    await srv.start_server()
    try:
        base = str(srv.make_url(""))
        assert (await _open(base, "https://app.harbour.example"))[0] == 101
        assert (await _open(base, "https://kiosk.harbour.example:8443"))[0] == 101
        assert (await _open(base, "https://kiosk.harbour.example"))[0] == 403
        assert (await _open(base, settings.public_base_url))[0] == 101
    finally:
        await srv.close()


def test_the_setting_takes_only_origins(settings):
    from contact_center.config import SettingsError, load_settings

    assert load_settings(
        allowed_origins="https://A.example:443/, http://b.example:8080"
    ).allowed_origins == ["https://a.example", "http://b.example:8080"]
    for bad in ("ftp://x.example", "https://x.example/path", "*"):
        with pytest.raises(SettingsError, match="CC_ALLOWED_ORIGINS"):
            load_settings(allowed_origins=bad)
