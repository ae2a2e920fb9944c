"""A video call comes back by itself after its server crashes: an advisor console and a
customer page, or the widget's panel as a bank's app opens it (two Chromiums, fake cameras) in a video call through a real server process;
SIGKILL the server and start it again on the same port and var dir; both pages start a new
media link by themselves (telling the person "Reconnecting the call…"), video is decoded again
on both sides, the chat goes on, and the recording holds the files of both legs."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest
from playwright.async_api import Locator, Page

from contact_center.db.models import Role
from contact_center.tools.bank_issuer import issue
from tests.browser.helpers import sign_in, wrap_up
from tests.helpers import cli_env, free_port, make_user, spawn_server, until_ready

pytestmark = pytest.mark.browser

FRAMES_DECODED = "el => Number(el.dataset.framesDecoded || 0)"
LINKS = "el => Number(el.dataset.link || 0)"
#: What Chromium logs by itself while the server is down (not the pages' errors).
DOWN = ("WebSocket connection to", "ERR_CONNECTION_REFUSED", "Failed to load resource")
BANK_SECRET = "bank-shared-secret-" + "r" * 32


class Base:
    """The server process's address, as the browser helpers expect it (``make_url``)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def make_url(self, path: str) -> str:
        return self.url + path


async def _decoding(box: Locator, seconds: float) -> None:
    """The box's getStats count of video frames decoded passes 5 and keeps rising."""
    async with asyncio.timeout(seconds):
        while (await box.evaluate(FRAMES_DECODED)) <= 5:
            await asyncio.sleep(0.3)
        first = await box.evaluate(FRAMES_DECODED)
        while (await box.evaluate(FRAMES_DECODED)) <= first:
            await asyncio.sleep(0.3)


async def _new_link(box: Locator, before: int, seconds: float) -> None:
    async with asyncio.timeout(seconds):
        while (await box.evaluate(LINKS)) <= before:
            await asyncio.sleep(0.2)


async def _chat(sender: Page, form: str, receiver: Locator, text: str) -> None:
    await sender.locator(f"{form} input, {form} textarea").first.fill(text)
    await sender.locator(f"{form} button[type=submit]").click()
    await receiver.locator(".chat li", has_text=text).wait_for(timeout=15_000)


@pytest.mark.parametrize("client", ["page", "widget"])
async def test_a_video_call_comes_back_by_itself_after_the_server_is_killed(
    client: str, fast_settings, redis_url, tmp_path: Path, new_page, screenshot
):
    user = await make_user(fast_settings, Role.ADVISOR, languages=["en"], skills={"general": 3},
                           display_name="Emma Lau")
    port = free_port()
    env = cli_env(
        CC_VAR_DIR=str(tmp_path / "var"), CC_PORT=str(port), CC_LOG_JSON="false",
        CC_REDIS_URL=redis_url, CC_DATABASE_URL=fast_settings.database_url,
        CC_BOT_ENABLED="false", CC_CUSTOMER_GRACE_S="60", CC_ADVISOR_GRACE_S="60",
        CC_PRESENCE_LEASE_S="2", CC_ICE_HOST_ADDRESSES="127.0.0.1", CC_BANK_TOKEN_SECRET=BANK_SECRET,
    )
    base = Base(f"http://127.0.0.1:{port}")
    server = spawn_server(env)
    try:
        await until_ready(base.url, server)
        console = await new_page()
        await sign_in(console, base, user.username, "/advisor")
        await console.wait_for_function("document.body.dataset.connection === 'open'")
        await console.select_option("#status", "available")
        await console.wait_for_selector("#agent-state[data-state=available]")

        customer = await new_page()
        if client == "widget":  # the panel as an app's WebView opens it, with a signed identity
            token = issue(BANK_SECRET, customer_id="HB-7310", name="Mei Chan", vip=True, lang="en")
            await customer.goto(base.make_url("/widget") + f"#bank_token={token}&channel=video")
            await customer.locator("#embedded-who", has_text="Mei Chan").wait_for()
        else:
            await customer.goto(base.make_url("/"))
        await customer.wait_for_function("document.body.dataset.connection === 'open'")
        await customer.check("input[name=channel][value=video]")
        await customer.check("#skip-bot")
        await customer.click("#start-form button[type=submit]")
        offer = console.locator(".offer")
        await offer.wait_for()
        contact_id = await offer.get_attribute("data-contact-id")
        await offer.locator(".accept").click()
        panel = console.locator(f".contact[data-contact-id='{contact_id}']")
        customer_box, advisor_box = customer.locator("#media"), panel.locator(".media")
        await _decoding(customer_box, 30)
        await _decoding(advisor_box, 30)
        await _chat(customer, "#chat-form", panel, "Hello before the crash")
        assert (await customer_box.evaluate(LINKS), await advisor_box.evaluate(LINKS)) == (1, 1)

        # a WebSocket blip alone (the media still connected) does not restart the call: the
        # contact resumes, and the same link goes on decoding
        for page in (customer, console):
            await page.evaluate("""() => {
              window.testStates = [];
              window.ccSignalling.on("session.state", (m) => window.testStates.push(m.reason || m.state));
              window.testOpens = 0;
              window.ccSignalling.on("open", () => { window.testOpens += 1; });
              window.ccSignalling._ws.close(4000, "test blip");
            }""")
        await customer.wait_for_function("window.testStates.includes('resumed')", timeout=15_000)
        await console.wait_for_function("window.testOpens > 0", timeout=15_000)
        await _decoding(customer_box, 20)
        await _decoding(advisor_box, 20)
        links = (await customer_box.evaluate(LINKS), await advisor_box.evaluate(LINKS))
        assert links == (1, 1), links
        assert await customer.locator("#media[data-recovering]").count() == 0

        # the server dies mid-call (no clean-up of any kind), then starts again
        killed = time.monotonic()
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)

        # both pages see that the call is lost and say so, waiting for the server to be back
        await customer.wait_for_selector("#media[data-recovering]", timeout=45_000)
        await panel.locator(".media[data-recovering]").wait_for(timeout=45_000)
        assert "Reconnecting the call" in (await customer.text_content("#media-status") or "")
        assert "Reconnecting the call" in (await panel.locator(".media-status").text_content() or "")
        noticed = time.monotonic() - killed
        await screenshot(customer, f"recovery-{client}-reconnecting")
        await screenshot(console, f"recovery-advisor-{client}-reconnecting")
        server = spawn_server(env)
        await until_ready(base.url, server)
        ready = time.monotonic()
        await _new_link(customer_box, links[0], 60)
        await _new_link(advisor_box, links[1], 60)
        await _decoding(customer_box, 60)  # the advisor's camera again, on the new link
        await _decoding(advisor_box, 60)  # and the customer's
        print(f"call lost noticed by both pages {noticed:.1f}s after the SIGKILL; video decoded again "
              f"on both sides {time.monotonic() - ready:.1f}s after the restarted server was ready")
        assert await customer_box.get_attribute("data-state") == "connected"
        assert await advisor_box.get_attribute("data-state") == "connected"
        assert await customer.locator("#media[data-recovering]").count() == 0
        assert "Reconnecting" not in (await customer.text_content("#media-status") or "")
        # a new link once the server is back, not one per attempt while it was down
        again = (await customer_box.evaluate(LINKS) - links[0], await advisor_box.evaluate(LINKS) - links[1])
        print(f"new media links: customer {again[0]}, advisor {again[1]}")
        assert 1 <= again[0] <= 2 and 1 <= again[1] <= 2, again

        # the chat goes on, both ways
        await _chat(customer, "#chat-form", panel, "Still here after the restart")
        await _chat(console, f".contact[data-contact-id='{contact_id}'] .chat-form", customer.locator("#conversation"), "Yes, I can see you again")
        await screenshot(customer, f"recovery-{client}-back")
        await screenshot(console, f"recovery-advisor-{client}-back")

        # the recording of the same contact holds both legs of both parties
        folder = tmp_path / "var" / "recordings" / str(contact_id)

        def files() -> set[str]:
            return {p.name for p in folder.glob("*.webm")}

        async with asyncio.timeout(30):
            while not {"customer-video-1.webm", "customer-video-2.webm",
                       "advisor-video-1.webm", "advisor-video-2.webm"} <= files():
                await asyncio.sleep(0.3)

        # the contact ends and is sealed; its replay says in words that the media moved
        await customer.click("#end")
        await wrap_up(panel)
        async with asyncio.timeout(30):
            while not (folder / "manifest.json").exists():
                await asyncio.sleep(0.3)
        officer = await make_user(fast_settings, Role.COMPLIANCE, display_name="Carol Chan")
        page = await new_page(viewport={"width": 1366, "height": 900}, locale="en-GB")
        await sign_in(page, base, officer.username, "/compliance")
        await page.fill("#case-reason", "Case FC-3301: checking a video call that survived a server crash")
        await page.click("#case-start")
        await page.wait_for_selector("#case-bar:not(.hidden)")
        await page.goto(base.make_url(f"/compliance/contacts/{contact_id}"))
        await page.wait_for_selector("body[data-replay-ready=true]")
        await page.locator("#entries li", has_text="a live server took over the media and the recording").wait_for()
        assert await page.locator("#entries li", has_text="media adopted").count() == 0
        errors = [e for e in new_page.errors if not any(d in e for d in DOWN)]
        assert errors == [], errors
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=20)
