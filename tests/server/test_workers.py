"""Several server processes on one port: any worker serves anyone; media stays where it began."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time

import redis

from contact_center import redis_keys
from contact_center.media.ice import IceSettings
from contact_center.tools.synthetic import SyntheticPeer
from contact_center.tools.wsclient import SignallingClient
from tests.helpers import PASSWORD, ROOT, cli_env, free_ports, run_cli, wait_ready


def test_two_workers_share_the_port_and_a_call_crosses_them(tmp_path, redis_url):
    port = free_ports(3)  # the shared port, then each worker's own
    env = cli_env(
        CC_VAR_DIR=str(tmp_path / "var"), CC_PORT=str(port), CC_LOG_JSON="false",
        CC_REDIS_URL=redis_url, CC_ICE_HOST_ADDRESSES="127.0.0.1", CC_BOT_ENABLED="false",
    )
    assert run_cli("db", "upgrade", env=env).returncode == 0
    created = run_cli(
        "users", "create", "adv", "--role", "advisor", "--languages", "en", "--skills", "general:3",
        "--password-stdin", env=env, input=PASSWORD + "\n",
    )
    assert created.returncode == 0, created.stderr
    redis.Redis.from_url(redis_url).flushdb()
    server = subprocess.Popen(
        [sys.executable, "-m", "contact_center", "serve", "--workers", "2"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, process=server)
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and client.hlen(redis_keys.INSTANCES) < 2:
            time.sleep(0.1)
        media_urls = set(client.hvals(redis_keys.INSTANCES))
        assert media_urls == {f"ws://127.0.0.1:{port + 1}/ws", f"ws://127.0.0.1:{port + 2}/ws"}
        stats = asyncio.run(_call(base))
        assert stats["customer_frames"] >= 20 and stats["advisor_frames"] >= 20
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    assert server.returncode == 0, server.stderr.read() if server.stderr else ""


async def _call(base: str) -> dict[str, int]:
    advisor, customer = SignallingClient(base), SignallingClient(base)
    media = SignallingClient(base, session=advisor.http)
    ice = IceSettings.loopback()
    customer_peer, advisor_peer = SyntheticPeer(ice, audio=False), SyntheticPeer(ice, audio=False)
    try:
        await advisor.login("adv", PASSWORD)
        await advisor.connect()
        await advisor.request("agent.status", status="available")
        await customer.as_guest()
        await customer.connect()
        contact_id = (await customer.request("session.start", channels=["video"], language="en", skip_bot=True))["contact_id"]
        offer = await advisor.wait_for("offer", contact_id=contact_id, timeout=15)
        await advisor.request("offer.accept", contact_id=contact_id)
        await customer.request("chat.send", contact_id=contact_id, text="across workers")
        assert (await advisor.wait_for("chat.message", contact_id=contact_id))["text"] == "across workers"
        await customer.request("rtc.offer", contact_id=contact_id, sdp=await customer_peer.offer())
        await customer_peer.accept_answer((await customer.wait_for("rtc.answer"))["sdp"])
        await media.connect(offer["media_url"], media_only=True)
        await media.request("rtc.offer", contact_id=contact_id, sdp=await advisor_peer.offer())
        await advisor_peer.accept_answer((await media.wait_for("rtc.answer"))["sdp"])
        async with asyncio.timeout(20):
            while customer_peer.stats.stamped < 20 or advisor_peer.stats.stamped < 20:
                await asyncio.sleep(0.1)
        await customer.request("session.end", contact_id=contact_id)
        return {"customer_frames": customer_peer.stats.stamped, "advisor_frames": advisor_peer.stats.stamped}
    finally:
        await customer_peer.close()
        await advisor_peer.close()
        for c in (media, customer, advisor):
            await c.close()
