"""The widget on a bank's page of another origin (a second aiohttp site on 127.0.0.2): one script
tag, a signed VIP identity passed by postMessage (no cookie reaches the iframe: another site),
a chat the advisor sees as the VIP's; then the same on a 390x844 phone, in a video call, with
the chat and the End button on the screen."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from pydantic import SecretStr

from contact_center.media.ice import IceSettings
from contact_center.tools.bank_issuer import issue
from contact_center.tools.synthetic import SyntheticPeer
from tests.browser.conftest import ARTIFACTS
from tests.browser.helpers import axe_violations, sign_in
from tests.helpers import free_port

pytestmark = pytest.mark.browser

SECRET = "bank-shared-secret-" + "g" * 32
BANK_HOST = "127.0.0.2"
BANK_PORT = free_port()
BANK_ORIGIN = f"http://{BANK_HOST}:{BANK_PORT}"
#: Another site, not in CC_WIDGET_ORIGINS, serving the same page.
FOREIGN_ORIGIN = f"http://127.0.0.3:{BANK_PORT}"

BANK_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Harbour Bank · My accounts</title>
<style>
  body {{ margin:0; font:16px/1.5 system-ui, sans-serif; color:#1b2a41; background:#eef2f6; }}
  header {{ background:#7a1f2b; color:#fff; padding:1rem 1.5rem; font-weight:700; }}
  main {{ max-width:720px; margin:2rem auto; padding:0 1rem; }}
  .account {{ background:#fff; border-radius:10px; padding:1.25rem; margin-bottom:1rem; }}
</style></head>
<body>
<header>Harbour Bank · Online banking</header>
<main>
  <h1>Good morning, Mei</h1>
  <div class="account"><strong>Everyday account</strong><br>HKD 48,230.55</div>
  <div class="account"><strong>Credit card ending 4412</strong><br>Statement due in 9 days</div>
</main>
<script src="{server}/static/widget.js" data-manual></script>
<script>
  window.widgetEvents = [];
  ContactCenter.init({{
    language: "en",
    topic: "cards",
    channel: {channel},
    identityToken: () => Promise.resolve({token}),
    onEvent: (event) => window.widgetEvents.push(event),
  }});
</script>
</body></html>
"""


@pytest.fixture
def fast_settings(fast_settings):  # type: ignore[no-untyped-def]
    return fast_settings.model_copy(
        update={"bank_token_secret": SecretStr(SECRET), "widget_origins": [BANK_ORIGIN]}
    )


@pytest.fixture
async def bank_site(server) -> AsyncIterator[dict[str, str]]:  # type: ignore[no-untyped-def]
    """The bank's own site on another loopback address: ``/?channel=..`` serves a page that
    embeds the widget with a fresh signed identity (``pages[path] = token`` for the test)."""
    issued: dict[str, str] = {}

    async def home(request: web.Request) -> web.Response:
        token = issue(SECRET, customer_id="HB-2044", name="Mei Chan", vip=True, lang="en")
        issued["token"] = token
        channel = request.query.get("channel", "text")
        html = BANK_PAGE.format(
            server=str(server.make_url("")).rstrip("/"), token=json.dumps(token),
            channel=json.dumps(channel),
        )
        return web.Response(text=html, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", home)
    runner = web.AppRunner(app)
    await runner.setup()
    for host in (BANK_HOST, "127.0.0.3"):
        await web.TCPSite(runner, host, BANK_PORT).start()
    try:
        yield issued
    finally:
        await runner.cleanup()


async def test_the_widget_on_a_bank_page_chats_as_the_signed_vip(
    server, bank_site, advisor_factory, new_page, screenshot
):
    advisor_user = await advisor_factory(display_name="Emma Lau")
    console = await new_page()
    await sign_in(console, server, advisor_user.username, "/advisor")
    await console.wait_for_function("document.body.dataset.connection === 'open'")
    await console.select_option("#status", "available")
    await console.wait_for_selector("#agent-state[data-state=available]")

    bank = await new_page()
    await bank.goto(f"{BANK_ORIGIN}/")
    await screenshot(bank, "widget-bank-page")
    await bank.get_by_role("button", name="Talk to us").click()
    frame = bank.frame_locator("iframe.cc-widget-frame")
    await frame.locator("#embedded-who", has_text="Mei Chan").wait_for()  # the bank's identity
    assert await frame.locator("select[name=topic]").input_value() == "cards"  # from init
    await frame.locator("#skip-bot").check()
    await frame.locator("#start-form button[type=submit]").click()

    offer = console.locator(".offer")
    await offer.wait_for()
    assert await offer.locator(".badge.vip").is_visible()
    await offer.locator(".accept").click()
    panel = console.locator(".contact")
    await panel.locator(".title", has_text="Mei Chan").wait_for()
    assert await panel.locator(".badge.vip").is_visible()
    await frame.locator("#state[data-state=connected]").wait_for()
    assert "Emma Lau" in await frame.locator("#state").text_content()

    await frame.locator("#chat-input").fill("Hello, my card was declined abroad")
    await frame.locator("#chat-form button[type=submit]").click()
    await panel.locator(".chat li", has_text="my card was declined abroad").wait_for()
    await panel.locator(".chat-input").fill("I can help with that, Ms Chan.")
    await panel.locator(".chat-form button[type=submit]").click()
    await frame.locator(".chat li", has_text="I can help with that").wait_for()
    # the socket drops: the panel comes back with its rejoin token (no cookie) and goes on
    panel_frame = next(f for f in bank.frames if "/widget" in f.url)
    await panel_frame.evaluate("window.ccSignalling._ws.close(4000, 'test drop')")
    await panel_frame.wait_for_function("document.body.dataset.connection === 'closed'")
    await panel_frame.wait_for_function("document.body.dataset.connection === 'open'", timeout=15_000)
    await frame.locator("#chat-input").fill("Still there after the drop")
    await frame.locator("#chat-form button[type=submit]").click()
    await panel.locator(".chat li", has_text="Still there after the drop").wait_for()
    # the bank's page heard the iframe's news, from our origin only
    events = await bank.evaluate("window.widgetEvents.map(e => e.type + ':' + (e.state || ''))")
    assert "ready:" in events and "state:connected" in events
    # the iframe had no cookie of ours: it was signed in by the token alone
    cookies = await bank.context.cookies(str(server.make_url("/")))
    assert cookies == [] or all(c["sameSite"] != "None" for c in cookies)
    await screenshot(bank, "widget-bank-page-chat")
    await screenshot(console, "widget-advisor-vip")
    assert await axe_violations(panel_frame) == []
    assert await axe_violations(console) == []

    await frame.locator("#end").click()
    await panel.locator(".state[data-state=wrap_up]").wait_for()
    assert new_page.errors == []


async def test_widget_only_frames_on_the_configured_origins(server, bank_site):  # type: ignore[no-untyped-def]
    import aiohttp

    async with aiohttp.ClientSession() as http:
        async with http.get(server.make_url("/widget")) as widget:
            csp = widget.headers["Content-Security-Policy"]
            assert f"frame-ancestors 'self' {BANK_ORIGIN}" in csp
            assert "X-Frame-Options" not in widget.headers
        async with http.get(server.make_url("/")) as page:
            assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
            assert page.headers["X-Frame-Options"] == "DENY"
        async with http.get(server.make_url("/static/widget.js")) as loader:
            assert loader.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
            assert "javascript" in loader.headers["Content-Type"]
        async with http.get(server.make_url("/static/customer.js")) as other:
            assert other.headers["Cross-Origin-Resource-Policy"] == "same-origin"


async def _video_call_on_a_phone(page, frame_or_page, server, clients, advisor_factory, screenshot, name):  # type: ignore[no-untyped-def]
    """Start a video contact from ``frame_or_page``, answer it with a Python advisor, and check
    that the remote video, the chat and the End button are all on the phone's screen."""
    advisor_user = await advisor_factory()
    advisor = await clients(username=advisor_user.username)
    await advisor.request("agent.status", status="available")
    await frame_or_page.locator("input[name=channel][value=video]").check()
    await frame_or_page.locator("#skip-bot").check()
    await frame_or_page.locator("#start-form button[type=submit]").click()
    offer = await advisor.wait_for("offer")
    contact_id = offer["contact_id"]
    await advisor.request("offer.accept", contact_id=contact_id)
    peer = SyntheticPeer(IceSettings.loopback(), name="advisor")
    try:
        await advisor.request("rtc.offer", contact_id=contact_id, sdp=await peer.offer())
        answer = await advisor.wait_for("rtc.answer", contact_id=contact_id)
        await peer.accept_answer(answer["sdp"])
        async with asyncio.timeout(15):
            await peer.wait_connected()
        await frame_or_page.locator("#media[data-state=connected]").wait_for(timeout=20_000)
        remote = frame_or_page.locator("#remote")
        async with asyncio.timeout(20):
            while not await remote.evaluate("el => el.videoWidth > 0 && el.currentTime > 0.3"):
                await asyncio.sleep(0.2)
        await advisor.request("chat.send", contact_id=contact_id, text="Can you see me?")
        await frame_or_page.locator(".chat li", has_text="Can you see me?").wait_for()
        for selector in ("#end", "#chat-input", "#remote", ".call-controls .cc-hangup"):
            box = await frame_or_page.locator(selector).bounding_box()
            assert box is not None, selector
            # wholly inside the 390x844 screen, without scrolling
            assert box["y"] >= 0 and box["y"] + box["height"] <= 844, (selector, box)
            assert box["x"] >= 0 and box["x"] + box["width"] <= 390, (selector, box)
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / f"{name}.png"))  # the screen, as one sees it
        await frame_or_page.locator("#end").click()
        await frame_or_page.locator("#state[data-state=wrap_up]").wait_for()
    finally:
        await peer.close()


async def test_phone_video_call_keeps_the_chat_and_end_on_screen(
    server, clients, advisor_factory, new_page, screenshot
):
    page = await new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    await page.goto(str(server.make_url("/")))
    await page.wait_for_function("document.body.dataset.connection === 'open'")
    await _video_call_on_a_phone(page, page, server, clients, advisor_factory, screenshot, "calls-phone-video")
    assert new_page.errors == []


async def test_phone_widget_video_call_keeps_the_chat_and_end_on_screen(
    server, bank_site, clients, advisor_factory, new_page, screenshot
):
    page = await new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    await page.goto(f"{BANK_ORIGIN}/?channel=video")
    await page.get_by_role("button", name="Talk to us").click()
    frame = page.frame_locator("iframe.cc-widget-frame")
    await frame.locator("#embedded-who", has_text="Mei Chan").wait_for()
    assert await frame.locator("input[name=channel][value=video]").is_checked()
    await _video_call_on_a_phone(page, frame, server, clients, advisor_factory, screenshot, "widget-phone-video")
    assert new_page.errors == []


async def test_an_app_webview_opens_the_panel_with_the_token_in_the_fragment(server, new_page, screenshot):
    """No parent page (an app's WebView): the fragment carries the token and the choices, and
    leaves the address at once."""
    token = issue(SECRET, customer_id="HB-3100", name="陳大文", vip=False, lang="yue")
    page = await new_page(viewport={"width": 390, "height": 844}, is_mobile=True, bypass_csp=False)
    await page.goto(str(server.make_url("/widget")) + f"#bank_token={token}&language=yue&topic=fx&channel=voice")
    await page.locator("#embedded-who", has_text="陳大文").wait_for()
    assert "bank_token" not in page.url
    assert await page.input_value("#language") == "yue"
    assert await page.input_value("select[name=topic]") == "fx"
    assert await page.locator("input[name=channel][value=voice]").is_checked()
    assert await page.text_content(".embedded-bar span[data-i18n]") == "搵我哋傾"
    await screenshot(page, "widget-webview-yue")
    assert new_page.errors == []


async def test_only_the_configured_sites_can_frame_the_panel(server, bank_site, new_page):
    """With the pages' policies enforced: the bank's site frames the panel, another does not."""
    for origin, framed in ((BANK_ORIGIN, True), (FOREIGN_ORIGIN, False)):
        page = await new_page(bypass_csp=False)
        refused: list[str] = []
        page.on("console", lambda msg, refused=refused: refused.append(msg.text) if "frame-ancestors" in msg.text else None)
        await page.goto(f"{origin}/")
        await page.get_by_role("button", name="Talk to us").click()
        if framed:
            await page.frame_locator("iframe.cc-widget-frame").locator("#embedded-who", has_text="Mei Chan").wait_for()
            assert await page.evaluate("ContactCenter.ready") is True and refused == []
        else:
            async with asyncio.timeout(10):
                while not refused:
                    await asyncio.sleep(0.1)
            assert await page.evaluate("ContactCenter.ready") is False
    # Chromium reports the refused frame as a console error: that one is expected
    assert all("frame-ancestors" in e for e in new_page.errors), new_page.errors
