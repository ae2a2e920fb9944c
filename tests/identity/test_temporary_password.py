"""A password an administrator sets is temporary: the user must choose their own at the next
sign-in before any page, API or WebSocket works (views/password.py, identity/auth.py)."""

from __future__ import annotations

import json

from sqlmodel import select
from yarl import URL

from contact_center import appkeys
from contact_center.db.engine import transaction
from contact_center.db.models import AuditLog, Role, User
from contact_center.views.password import PasswordForm, problem_with
from tests.helpers import PASSWORD, csrf_from, login, make_user

NEW = "my own choice of words"


async def _admin_headers(client, settings) -> dict[str, str]:  # type: ignore[no-untyped-def]
    admin = await make_user(settings, Role.ADMIN)
    assert (await login(client, admin.username)).status == 303
    html = await (await client.get("/admin")).text()
    return {"X-CSRF-Token": html.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]}


async def _reset(client, settings, user: User) -> str:  # type: ignore[no-untyped-def]
    headers = await _admin_headers(client, settings)
    reset = await client.post(f"/api/admin/users/{user.id}/password-reset", headers=headers)
    assert reset.status == 200, await reset.text()
    body = await reset.json()
    assert body["user"]["must_change_password"] is True
    client.session.cookie_jar.clear()
    return str(body["temporary_password"])


async def _change(client, current: str, new: str, repeat: str | None = None, next_path: str = ""):  # type: ignore[no-untyped-def]
    page = await client.get("/password")
    assert page.status == 200
    return await client.post(
        "/password",
        data={
            "current_password": current,
            "new_password": new,
            "repeat_password": new if repeat is None else repeat,
            "next": next_path,
            "csrf_token": csrf_from(await page.text()),
        },
        allow_redirects=False,
    )


async def _actions(client, target: str) -> list[AuditLog]:  # type: ignore[no-untyped-def]
    async with transaction(client.app[appkeys.DB]) as session:
        rows = await session.exec(
            select(AuditLog).where(AuditLog.target == target).order_by(AuditLog.id)  # type: ignore[arg-type]
        )
        return [r for r in rows.all() if r.action.startswith("password.")]


async def test_after_a_reset_nothing_works_until_the_user_chooses_a_password(client, settings):
    advisor = await make_user(settings, Role.ADVISOR)
    temporary = await _reset(client, settings, advisor)

    signed_in = await login(client, advisor.username, temporary)
    assert signed_in.status == 303 and signed_in.headers["Location"] == "/password"
    # every page goes to the change-password page, keeping where it was going
    page = await client.get("/advisor?lang=zh-Hant", allow_redirects=False)
    assert page.status == 302
    location = URL(page.headers["Location"])
    assert location.path == "/password" and location.query["next"] == "/advisor?lang=zh-Hant"
    # APIs answer a clear error
    api = await client.post("/api/ws-token", headers={"X-CSRF-Token": "x"})
    assert api.status == 403  # (the CSRF check comes first)
    html = await (await client.get("/password")).text()
    assert "set by an administrator" in html
    token = html.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    api = await client.post("/api/ws-token", headers={"X-CSRF-Token": token})
    assert api.status == 403 and "choose your own at /password" in await api.text()
    assert api.headers["X-Password-Change"] == "/password"
    # and the WebSocket refuses the hello
    async with client.ws_connect("/ws") as ws:
        await ws.send_str(json.dumps({"v": 1, "type": "hello", "id": "h"}))
        refused = json.loads((await ws.receive()).data)
    assert refused["type"] == "error" and refused["code"] == "unauthenticated"
    assert "temporary" in refused["message"]

    wrong = await _change(client, "not the password", NEW)
    assert wrong.status == 401 and "current password is wrong" in await wrong.text()
    assert (await _change(client, temporary, NEW, repeat=NEW + "!")).status == 400
    assert (await _change(client, temporary, "short")).status == 400
    assert (await _change(client, temporary, temporary)).status == 400
    done = await _change(client, temporary, NEW, next_path="/advisor?lang=zh-Hant")
    assert done.status == 303 and done.headers["Location"] == "/advisor?lang=zh-Hant"
    assert (await client.get("/advisor", allow_redirects=False)).status == 200

    async with transaction(client.app[appkeys.DB]) as session:
        user = await session.get(User, advisor.id)
        assert user is not None and user.must_change_password is False
    actions = await _actions(client, f"user:{advisor.id}")
    assert [a.action for a in actions] == ["password.change_failed", "password.change"]
    assert actions[-1].detail == {"was_temporary": True}
    # the temporary password is gone; the new one signs in straight to the console
    client.session.cookie_jar.clear()
    assert (await login(client, advisor.username, temporary)).status == 401
    again = await login(client, advisor.username, NEW)
    assert again.status == 303 and again.headers["Location"] == "/advisor"


async def test_an_account_made_on_the_admin_page_starts_with_a_temporary_password(client, settings):
    headers = await _admin_headers(client, settings)
    created = await client.post(
        "/api/admin/users",
        json={"username": "first-day", "password": PASSWORD, "role": "supervisor"},
        headers=headers,
    )
    assert created.status == 201
    user = (await created.json())["user"]
    assert user["must_change_password"] is True
    async with transaction(client.app[appkeys.DB]) as session:
        row = (await session.exec(select(AuditLog).where(AuditLog.target == f"user:{user['id']}"))).one()
    assert row.action == "user.create" and row.detail["temporary_password"] is True
    client.session.cookie_jar.clear()
    page = await client.get("/login?next=/supervisor%3Flang%3Dyue")
    signed_in = await client.post(
        "/login",
        data={"username": "first-day", "password": PASSWORD, "next": "/supervisor?lang=yue",
              "csrf_token": csrf_from(await page.text())},
        allow_redirects=False,
    )
    location = URL(signed_in.headers["Location"])
    assert location.path == "/password" and location.query["next"] == "/supervisor?lang=yue"
    done = await _change(client, PASSWORD, NEW, next_path=location.query["next"])
    assert done.headers["Location"] == "/supervisor?lang=yue"


async def test_the_password_page_never_redirects_off_site(client, settings):
    user = await make_user(settings, Role.SUPERVISOR)
    assert (await client.get("/password", allow_redirects=False)).status == 302  # not signed in
    await login(client, user.username)
    html = await (await client.get("/password?next=//evil.example/")).text()
    assert 'name="next" value=""' in html and "set by an administrator" not in html
    done = await _change(client, PASSWORD, NEW, next_path="//evil.example/")
    assert done.status == 303 and done.headers["Location"] == "/supervisor"


async def test_a_change_ends_the_other_sessions_of_the_account(client, aiohttp_client, settings):
    user = await make_user(settings, Role.SUPERVISOR)
    other = await aiohttp_client(client.server)
    assert (await login(other, user.username)).status == 303
    assert (await other.get("/supervisor", allow_redirects=False)).status == 200
    await login(client, user.username)
    assert (await _change(client, PASSWORD, NEW)).status == 303
    assert (await other.get("/supervisor", allow_redirects=False)).status == 302
    assert (await client.get("/supervisor", allow_redirects=False)).status == 200


def test_the_new_password_is_checked_before_any_password_check():
    def form(**kw: str) -> PasswordForm:
        return PasswordForm(**{"current_password": "old one!", "new_password": NEW,
                               "repeat_password": NEW, **kw})

    assert problem_with(form()) is None
    assert "8 characters" in str(problem_with(form(new_password="short", repeat_password="short")))
    long = "x" * 257
    assert "at most 256" in str(problem_with(form(new_password=long, repeat_password=long)))
    assert "not the same" in str(problem_with(form(repeat_password="other")))
    assert "other than the current" in str(
        problem_with(form(current_password=NEW))
    )
    assert "Enter your current" in str(problem_with(form(current_password="")))
