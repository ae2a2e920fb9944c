"""Small helpers shared by the browser tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.helpers import PASSWORD

AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"


async def sign_in(page, server, username: str, path: str) -> None:  # type: ignore[no-untyped-def]
    """Open ``path``, get sent to the sign-in form, sign in, land on ``path``."""
    await page.goto(str(server.make_url(path)))
    await page.wait_for_url(lambda url: "/login?next=" in url)
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("form[action='/login'] button[type=submit]")
    await page.wait_for_url(lambda url: url.endswith(path))


async def axe_violations(page: Any) -> list[str]:
    """Serious or critical axe-core violations of a page (or a frame of it) as it is now."""
    await page.add_script_tag(path=str(AXE))
    result = await page.evaluate("async () => (await axe.run(document)).violations")
    return [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
        for v in result
        if v["impact"] in ("serious", "critical")
    ]


async def wrap_up(panel: Any, outcome: str = "resolved") -> None:
    """Finish a contact's wrap-up in the advisor console: its outcome (required), then Ready."""
    await panel.locator(".wrapup-form select[name=outcome]").select_option(outcome)
    await panel.locator(".wrapup").click()
