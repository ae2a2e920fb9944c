"""The widget's start screen shows the VIP badge of a signed VIP identity (as the customer page
does for a signed-in VIP), and no badge for a customer who is not one."""

from __future__ import annotations

import pytest

from contact_center.tools.bank_issuer import issue
from tests.browser.test_browser_widget import SECRET, fast_settings  # noqa: F401 (the fixture)

pytestmark = pytest.mark.browser


async def test_the_widget_start_screen_shows_the_vip_badge(server, new_page, screenshot):  # type: ignore[no-untyped-def]
    vip = issue(SECRET, customer_id="HB-2045", name="Mei Chan", vip=True, lang="en")
    page = await new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    await page.goto(str(server.make_url("/widget")) + f"#bank_token={vip}&language=en")
    await page.locator("#embedded-who", has_text="Mei Chan").wait_for()
    badge = page.locator("#start #vip-badge")
    await badge.wait_for(state="visible")
    assert (await badge.text_content()) == "Priority customer"
    await screenshot(page, "widget-vip-start")

    # the page's language changes the badge's words too
    await page.select_option("#language", "yue")
    assert (await badge.text_content()) != "Priority customer"

    plain = issue(SECRET, customer_id="HB-2046", name="Ka Ho Wong", vip=False, lang="en")
    other = await new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    await other.goto(str(server.make_url("/widget")) + f"#bank_token={plain}&language=en")
    await other.locator("#embedded-who", has_text="Ka Ho Wong").wait_for()
    assert await other.locator("#vip-badge").is_hidden()
    assert new_page.errors == []
