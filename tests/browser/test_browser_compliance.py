"""The compliance officer's day in Chromium, on a contact made for real just before.

A signed-in customer and an advisor (two Chromiums with fake cameras) make a short video call
through the server and chat, one line in Chinese and one in English; it ends, is wrapped up and
sealed. A compliance officer then signs in, opens a case with its reason, finds the contact by
customer and by a word of the chat (English, then Chinese), and replays it: both parties' videos
play, a click on a transcript line moves both to that moment, the highlighted line follows
playback; the audit log lists every one of those accesses with the case's reason. Screenshots
go to tests/artifacts/ for a person to look at.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from playwright.async_api import Page
from sqlmodel import col, select

from contact_center import appkeys
from contact_center.db.engine import transaction
from contact_center.db.models import AuditLog, Role
from recordings import ledger
from tests.browser.helpers import sign_in, wrap_up
from tests.helpers import PASSWORD, make_user

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
DESKTOP = {"width": 1366, "height": 900}
PLAYING = "el => el.videoWidth > 0 && el.currentTime > 0.5"
CUSTOMER_LINE = "我想查詢信用卡的月結單"  # "I would like to ask about my credit card statement"
ADVISOR_LINE = "Certainly, I can see your statement for November."
REASON = "Case FC-2291: customer disputes a card payment, checking the advice given"
SEEK_TOLERANCE_S = 0.5


@dataclass
class Call:
    contact_id: str
    customer_name: str
    advisor_name: str


async def shoot(page: Page, name: str, *, full_page: bool = True) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=full_page)
    return path


async def sealed(app: Any, contact_id: str, seconds: float = 40) -> None:
    db = app[appkeys.DB]
    async with asyncio.timeout(seconds):
        while not [e for e in await ledger.entries(db, contact_id=contact_id) if e.kind == "seal"]:
            await asyncio.sleep(0.2)


async def video_call_with_chat(server: Any, settings: Any, advisor_factory: Any, new_page: Any) -> Call:
    """A signed-in customer and an advisor talk on video and chat; the contact ends, sealed."""
    advisor_user = await advisor_factory(display_name="Emma Lau")
    customer_user = await make_user(settings, Role.CUSTOMER, display_name="Mei-ling Chan")
    console = await new_page()
    await sign_in(console, server, advisor_user.username, "/advisor")
    await console.wait_for_function("document.body.dataset.connection === 'open'")
    await console.select_option("#status", "available")
    await console.wait_for_selector("#agent-state[data-state=available]")

    customer = await new_page()
    await customer.goto(str(server.make_url("/login?next=/")))
    await customer.fill("input[name=username]", customer_user.username)
    await customer.fill("input[name=password]", PASSWORD)
    await customer.click("form[action='/login'] button[type=submit]")
    await customer.wait_for_function("document.body.dataset.connection === 'open'")
    await customer.check("input[name=channel][value=video]")
    await customer.check("#skip-bot")
    await customer.click("#start-form button[type=submit]")

    offer = console.locator(".offer")
    await offer.wait_for()
    contact_id = await offer.get_attribute("data-contact-id")
    assert contact_id
    await offer.locator(".accept").click()
    panel = console.locator(f".contact[data-contact-id='{contact_id}']")
    await customer.wait_for_selector("#media[data-state=connected]", timeout=20_000)
    await panel.locator(".media[data-state=connected]").wait_for(timeout=20_000)
    for page, video in ((customer, customer.locator("#remote")), (console, panel.locator("video.remote"))):
        await page.wait_for_function(PLAYING, arg=await video.element_handle(), timeout=20_000)

    # Lines a few seconds apart, inside the recorded media, so that each has its own moment.
    await asyncio.sleep(1.5)
    await customer.fill("#chat-input", CUSTOMER_LINE)
    await customer.press("#chat-input", "Enter")
    await panel.get_by_text(CUSTOMER_LINE).wait_for()
    await asyncio.sleep(2.5)
    await panel.locator(".chat-input").fill(ADVISOR_LINE)
    await panel.locator(".chat-input").press("Enter")
    await customer.get_by_text(ADVISOR_LINE).wait_for()
    await asyncio.sleep(2.5)

    await customer.click("#end")
    await panel.locator(".state[data-state=wrap_up]").wait_for()
    await wrap_up(panel)
    await panel.wait_for(state="detached")
    await sealed(server.app, contact_id)
    for page in (customer, console):
        await page.close()
    return Call(contact_id, customer_user.display_name, advisor_user.display_name)


async def search(page: Page, **fields: str) -> list[str]:
    """Fill the search form (the other fields emptied), submit, the contact ids listed."""
    for name in ("customer", "q"):
        await page.fill(f"#f-{name}", fields.get(name, ""))
    before = await page.get_attribute("#results", "data-searched")
    await page.click("#search-submit")
    await page.wait_for_function(
        "before => { const t = document.querySelector('#results');"
        " return t.dataset.searched !== undefined && t.dataset.searched !== before"
        " && !t.hasAttribute('aria-busy'); }",
        arg=before,
    )
    return await page.eval_on_selector_all("#results tbody tr.result", "rows => rows.map(r => r.dataset.contactId)")


async def videos(page: Page) -> list[dict[str, Any]]:
    return await page.eval_on_selector_all(
        "#stage video",
        """els => els.map(el => ({
            name: el.dataset.name, offset: Number(el.dataset.offset), width: el.videoWidth,
            time: el.currentTime, seeking: el.seeking, paused: el.paused, ready: el.readyState }))""",
    )


async def settled(page: Page) -> list[dict[str, Any]]:
    """The videos once no seek is under way."""
    await page.wait_for_function(
        "() => [...document.querySelectorAll('#stage video')].every(v => !v.seeking && v.readyState >= 2)"
    )
    return await videos(page)


async def click_line(page: Page, text: str) -> float:
    """Click the transcript line holding ``text``; its time on the replay's clock."""
    line = page.locator("#entries li", has_text=text)
    offset = float(await line.get_attribute("data-offset") or "nan")
    await line.locator("button").click()
    return offset


async def test_an_officer_finds_replays_and_audits_a_recorded_video_call(
    server, fast_settings, advisor_factory, new_page
):
    call = await video_call_with_chat(server, fast_settings, advisor_factory, new_page)
    officer_user = await make_user(fast_settings, Role.COMPLIANCE, display_name="Carol Chan")
    page = await new_page(viewport=DESKTOP, locale="en-GB")
    await sign_in(page, server, officer_user.username, "/compliance")

    # Nothing is shown before the case's reason; a reason of one word is refused.
    await page.wait_for_selector("#case-gate:not(.hidden)")
    assert await page.is_hidden("#search-form")
    await shoot(page, "compliance-gate")
    await page.fill("#case-reason", "checking")
    await page.click("#case-start")
    await page.wait_for_selector("#case-error:not(.hidden)")
    await page.fill("#case-reason", REASON)
    await page.click("#case-start")
    await page.wait_for_selector("#case-bar:not(.hidden)")
    assert await page.text_content("#case-reason-text") == REASON
    await page.wait_for_selector("#results[data-searched]")

    # Found by the customer's name, by an English word and by a Chinese word of the chat (the
    # session's database may hold other tests' contacts: each listed one must hold the word).
    assert await search(page, customer=call.customer_name) == [call.contact_id]
    for word in ("statement", "信用卡"):
        found = await search(page, q=word)
        assert call.contact_id in found, (word, found)
        marks = await page.eval_on_selector_all(
            "#results tbody tr.result", "rows => rows.map(r => [...r.querySelectorAll('.match mark')].map(m => m.textContent.toLowerCase()))"
        )
        assert all(word in row for row in marks), (word, marks)
    assert call.contact_id not in await search(page, q="mortgage")
    assert await search(page, customer=call.customer_name.split()[0], q="信用卡") == [call.contact_id]
    row = page.locator(f"tr[data-contact-id='{call.contact_id}']")
    assert await row.locator("td").nth(2).text_content() == call.advisor_name
    await shoot(page, "compliance-search")

    # The replay: both parties' videos play on one clock.
    await row.locator("a").click()
    await page.wait_for_url(f"**/compliance/contacts/{call.contact_id}")
    await page.wait_for_selector("body[data-replay-ready=true]")
    assert await page.text_content("#r-customer") == call.customer_name
    parties = await page.eval_on_selector_all("#stage figure.party", "fs => fs.map(f => f.dataset.party)")
    assert parties == ["customer", "advisor"]
    assert len(await videos(page)) == 2
    await page.click("#play")
    await page.wait_for_function(
        "() => [...document.querySelectorAll('#stage video')].every(v => v.videoWidth > 0 && v.currentTime > 0.3 && !v.paused)",
        timeout=15_000,
    )
    first = await videos(page)
    await asyncio.sleep(1.0)
    then = await videos(page)
    for before, after in zip(first, then, strict=True):
        assert after["width"] > 0, after
        assert after["time"] > before["time"] + 0.5, (before, after)

    # A click on a line moves both videos to its moment (paused: the picture stays there).
    await page.click("#play")
    await page.wait_for_selector("#play[data-state=paused]")
    for text in (ADVISOR_LINE, CUSTOMER_LINE):
        at = await click_line(page, text)
        for video in await settled(page):
            assert abs(video["offset"] + video["time"] - at) <= SEEK_TOLERANCE_S, (text, at, video)
        highlighted = await page.get_attribute("#entries li.current", "data-offset")
        assert abs(float(highlighted or "nan") - at) < 0.06, (text, at, highlighted)
        assert text in (await page.text_content("#entries li.current") or "")

    # Playing on from the customer's line, the highlight moves on to the advisor's.
    advisor_at = float(await page.locator("#entries li", has_text=ADVISOR_LINE).get_attribute("data-offset") or "nan")
    await page.click("#play")
    await page.wait_for_function(
        "at => Number(document.body.dataset.replayTime) > at + 0.2", arg=advisor_at, timeout=15_000
    )
    current = page.locator("#entries li.current")
    assert float(await current.get_attribute("data-offset") or "nan") >= advisor_at
    assert await page.locator("#entries li.current ~ li", has_text=ADVISOR_LINE).count() == 0
    # ...and a click while playing still lands both videos on the line.
    at = await click_line(page, CUSTOMER_LINE)
    for video in await settled(page):
        assert abs(video["offset"] + video["time"] - at) <= SEEK_TOLERANCE_S + 0.2, (at, video)
    await page.click("#play")
    await page.wait_for_selector("#play[data-state=paused]")
    await click_line(page, ADVISOR_LINE)
    await settled(page)
    await shoot(page, "compliance-replay")

    # The same replay in Traditional Chinese.
    await page.select_option("#lang", "zh-Hant")
    assert await page.evaluate("document.documentElement.lang") == "zh-Hant"
    assert await page.text_content("#transcript-title") == "對話及事件"
    await shoot(page, "compliance-replay-zh-Hant")
    await page.select_option("#lang", "en")

    # The audit log lists every access of the case, with its reason.
    await page.click(".c-nav a[href='/compliance/audit']")
    await page.wait_for_url("**/compliance/audit")
    await page.fill("#a-contact", call.contact_id)
    await page.click("#audit-form button[type=submit]")
    await page.wait_for_selector("#audit tbody tr[data-action=media]")
    actions = set(await page.eval_on_selector_all("#audit tbody tr", "rows => rows.map(r => r.dataset.action)"))
    assert {"view", "timeline", "manifest", "media", "grant_extend"} <= actions, actions
    reasons = set(await page.eval_on_selector_all("#audit tbody tr td:nth-child(5)", "cells => cells.map(c => c.textContent)"))
    assert reasons == {REASON}
    await page.fill("#a-contact", "")
    await page.select_option("#a-action", "search")
    await page.click("#audit-form button[type=submit]")
    await page.wait_for_function(
        "() => [...document.querySelectorAll('#audit tbody tr')].every(r => r.dataset.action === 'search')"
    )
    assert await page.locator("#audit tbody tr[data-action=search]").count() >= 6
    await page.select_option("#a-action", "")
    await page.click("#audit-form button[type=submit]")
    await page.wait_for_selector("#audit tbody tr[data-action=audit_view]")
    await shoot(page, "compliance-audit")

    async with transaction(server.app[appkeys.DB]) as session:
        rows = (
            await session.exec(
                select(AuditLog)
                .where(
                    AuditLog.actor == f"user:{officer_user.id}",
                    col(AuditLog.action).startswith("compliance."),
                )
                .order_by(col(AuditLog.id))
            )
        ).all()
    assert {row.reason for row in rows} == {REASON}
    done = [row.action.removeprefix("compliance.") for row in rows]
    assert done[0] == "grant" and done.count("search") >= 6
    assert {"view", "timeline", "manifest", "media", "audit_view"} <= set(done)
    media = [row for row in rows if row.action == "compliance.media"]
    assert {row.detail["file"] for row in media} >= {"customer-video-1.webm", "advisor-video-1.webm"}
    assert all(row.target == f"contact:{call.contact_id}" for row in media)
    # The one failed request is the short reason refused on purpose above.
    refused = [e for e in new_page.errors if "403" in e and "/api/compliance/grants" in e]
    assert len(refused) == 1 and [e for e in new_page.errors if e not in refused] == []


async def test_an_officer_sorts_pages_rechecks_holds_and_exports(
    server, fast_settings, new_page, tmp_path
):
    """The daily work on the console: the results sorted and paged, a recording re-checked,
    held and released, and exported into a zip that checks out offline."""
    from recordings.export import verify_export
    from tests.compliance.recording import Line, make_contact, record, seal

    db = server.app[appkeys.DB]
    advisor = await make_user(fast_settings, Role.ADVISOR, display_name="Ken Ho")
    family = f"Tsang{uuid4().hex[:5]}"
    made = []
    for index in range(12):
        made.append(
            await make_contact(
                db,
                customer_name=f"Wing {family} {index}",
                started=datetime.now(UTC) - timedelta(hours=2, minutes=index),
                seconds=60.0 + 45 * ((index * 5) % 12),
                channels=("text", "video"),
                advisor_id=advisor.id,
                lines=(Line("customer", "My transfer to Toronto has not arrived", 2.0),
                       Line("advisor", "I can see it, it is with the other bank", 8.0)),
            )
        )
    chosen = made[4]
    await seal(db, await record(fast_settings.recordings_dir, chosen))

    page = await new_page(viewport=DESKTOP, locale="en-GB", accept_downloads=True)
    officer = await make_user(fast_settings, Role.COMPLIANCE, display_name="Carol Chan")
    await sign_in(page, server, officer.username, "/compliance")
    await page.fill("#case-reason", REASON)
    await page.click("#case-start")
    await page.wait_for_selector("#results[data-searched]")

    # Paged: 12 results, 10 a page.
    await page.select_option("#per-page", "10")
    await page.wait_for_function("() => document.querySelector('#results').dataset.searched.includes('per_page=10')")
    assert len(await search(page, customer=family)) == 10
    assert await page.text_content("#results-count") == "12 recordings"
    assert await page.text_content("#page-info") == "Page 1 of 2"
    before = await page.get_attribute("#results", "data-searched")
    await page.click("#page-next")
    await page.wait_for_function("b => document.querySelector('#results').dataset.searched !== b", arg=before)
    assert await page.locator("#results tbody tr.result").count() == 2
    assert await page.text_content("#page-info") == "Page 2 of 2"
    assert await page.is_disabled("#page-next")

    # Sorted by duration, longest first, then shortest first; the page goes back to 1.
    async def durations() -> list[float]:
        ids = await page.eval_on_selector_all("#results tbody tr.result", "rows => rows.map(r => r.dataset.contactId)")
        seconds = {m.contact.id: (m.contact.ended_at - m.contact.created_at).total_seconds() for m in made}
        return [seconds[i] for i in ids]

    for order in ("descending", "ascending"):
        before = await page.get_attribute("#results", "data-searched")
        await page.click("#results th[data-sort=duration] button")
        await page.wait_for_function("b => document.querySelector('#results').dataset.searched !== b", arg=before)
        assert await page.get_attribute("#results th[data-sort=duration]", "aria-sort") == order
        listed = await durations()
        assert listed == sorted(listed, reverse=order == "descending") and len(listed) == 10
    assert await page.text_content("#page-info") == "Page 1 of 2"
    await shoot(page, "compliance-search-sorted")

    # The sealed one: re-checked, held and released, exported.
    await page.goto(str(server.make_url(f"/compliance/contacts/{chosen.contact.id}")))
    await page.wait_for_selector("body[data-replay-ready=true]")
    assert await page.get_attribute("#r-verify", "data-state") == "unchecked"
    await page.click("#r-recheck")
    await page.wait_for_selector("#r-verify[data-state=verified]")
    await page.click("#r-hold-toggle")
    await page.fill("#hold-reason", "Litigation hold for case FC-2291")
    await page.click("#hold-confirm")
    await page.wait_for_selector("#r-hold[data-held=true]")
    held = await page.text_content("#r-hold") or ""
    assert "Litigation hold for case FC-2291" in held and "Carol Chan" in held, held
    assert await page.text_content("#r-hold-toggle") == "Release hold"
    await page.click("#r-export")
    link = page.locator("#r-export-result a.download")
    await link.wait_for()
    sha = await page.get_attribute("#r-export-result", "data-sha256")
    async with page.expect_download() as waiting:
        await link.click()
    download = await waiting.value
    zipped = tmp_path / "export.zip"
    await download.save_as(zipped)
    assert hashlib.sha256(zipped.read_bytes()).hexdigest() == sha
    assert verify_export(zipped) == []
    await page.click("#load-access")
    await page.wait_for_selector("#access tbody tr")
    await shoot(page, "compliance-replay-held-exported")
    await page.click("#r-hold-toggle")
    await page.fill("#hold-reason", "Case FC-2291 closed, hold lifted")
    await page.click("#hold-confirm")
    await page.wait_for_selector("#r-hold[data-held=false]")

    # The results say so: verified, not held.
    await page.goto(str(server.make_url(f"/compliance?customer={family}")))
    cells = page.locator(f"tr[data-contact-id='{chosen.contact.id}'] td")
    await cells.first.wait_for()
    assert await cells.nth(8).get_attribute("data-verify") == "verified"
    assert await cells.nth(9).get_attribute("data-held") == "false"
    async with transaction(db) as session:
        actions = [
            row.action
            for row in (
                await session.exec(
                    select(AuditLog)
                    .where(AuditLog.target == f"contact:{chosen.contact.id}")
                    .order_by(col(AuditLog.id))
                )
            ).all()
        ]
    assert {"compliance.verify", "compliance.hold", "compliance.unhold", "compliance.export",
            "compliance.export_download"} <= set(actions)
    assert new_page.errors == []
