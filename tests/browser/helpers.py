"""Small helpers shared by the browser tests."""

from __future__ import annotations

from tests.helpers import PASSWORD


async def sign_in(page, server, username: str, path: str) -> None:  # type: ignore[no-untyped-def]
    """Open ``path``, get sent to the sign-in form, sign in, land on ``path``."""
    await page.goto(str(server.make_url(path)))
    await page.wait_for_url(lambda url: "/login?next=" in url)
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("form[action='/login'] button[type=submit]")
    await page.wait_for_url(lambda url: url.endswith(path))
