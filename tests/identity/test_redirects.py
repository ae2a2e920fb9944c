"""Issue 13, defect 2: ``next`` after sign-in never leaves the site, however it is spelled."""

from __future__ import annotations

import pytest
from yarl import URL

from contact_center.db.models import Role
from contact_center.views.auth import safe_next
from tests.helpers import PASSWORD, csrf_from, make_user

OFF_SITE = [
    "//evil.example/",
    "/\t/evil.example",
    "/\r/evil.example",
    "/\n/evil.example",
    "/\r\n/evil.example",
    "\t//evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "/\\/evil.example",
    "\\/evil.example",
    "/ /evil.example",
    "/\x00/evil.example",
    "/\x0b/evil.example",
    "/\u3000/evil.example",
    "https://evil.example",
    "javascript:alert(1)",
    " /advisor",
    "advisor",
    "",
]


@pytest.mark.parametrize("target", OFF_SITE)
async def test_next_never_redirects_off_site(client, settings, target):
    user = await make_user(settings, Role.ADVISOR)
    page = await client.get("/login")
    response = await client.post(
        "/login",
        data={
            "username": user.username,
            "password": "correct horse battery",
            "csrf_token": csrf_from(await page.text()),
            "next": target,
        },
        allow_redirects=False,
    )
    assert response.status == 303
    assert response.headers["Location"] == "/advisor", repr(target)


@pytest.mark.parametrize("target", ["/advisor", "/advisor?tab=2#queue", "/static/app.css", "/a/b/../c"])
def test_same_site_paths_are_followed(target):
    assert safe_next(target) == target


@pytest.mark.parametrize("target", OFF_SITE)
def test_safe_next_refuses(target):
    assert safe_next(target) is None


async def test_sign_in_redirect_carries_the_path_quoted(client):
    response = await client.get("/advisor", allow_redirects=False)
    assert response.headers["Location"] == "/login?next=/advisor"
    response = await client.get("/advisor?tab=2&x=y", allow_redirects=False)
    location = URL(response.headers["Location"])
    # the whole path and query come back as one parameter, not as parameters of /login
    assert location.path == "/login" and dict(location.query) == {"next": "/advisor?tab=2&x=y"}


async def test_next_and_its_query_survive_a_failed_sign_in(client, settings):
    """The form posts to /login with no query: a failed attempt must keep the hidden ``next``."""
    user = await make_user(settings, Role.ADVISOR)
    page = await client.get("/login?next=/advisor%3Flang%3Dzh-Hant%26tab%3D2")
    html = await page.text()
    assert 'name="next" value="/advisor?lang=zh-Hant&amp;tab=2"' in html
    fields = {"username": user.username, "csrf_token": csrf_from(html),
              "next": "/advisor?lang=zh-Hant&tab=2"}
    failed = await client.post("/login", data={**fields, "password": "wrong one"})
    assert failed.status == 401
    html = await failed.text()
    assert 'name="next" value="/advisor?lang=zh-Hant&amp;tab=2"' in html
    empty = await client.post("/login", data={**fields, "password": ""})
    assert 'name="next" value="/advisor?lang=zh-Hant&amp;tab=2"' in await empty.text()
    evil = await client.post("/login", data={**fields, "password": "wrong", "next": "//evil.example"})
    assert 'name="next" value=""' in await evil.text()
    done = await client.post(
        "/login", data={**fields, "password": PASSWORD, "csrf_token": csrf_from(html)},
        allow_redirects=False,
    )
    assert done.status == 303 and done.headers["Location"] == "/advisor?lang=zh-Hant&tab=2"
