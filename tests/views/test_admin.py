"""The admin API and CLI: accounts listed, created, edited, disabled; each change audited once and
pushed to the router at once."""

from __future__ import annotations

import json

import pytest
from sqlmodel import select

from contact_center import appkeys
from contact_center.db.engine import transaction
from contact_center.db.models import AuditLog, Contact, Role
from routing.models import AgentState, Channel, ContactRequest
from tests.helpers import PASSWORD, cli_env, login, make_user, run_cli


async def _admin(client, settings):  # type: ignore[no-untyped-def]
    admin = await make_user(settings, Role.ADMIN)
    assert (await login(client, admin.username)).status == 303
    page = await client.get("/admin")
    assert page.status == 200
    html = await page.text()
    token = html.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    return admin, {"X-CSRF-Token": token}


async def _audit_rows(client, target: str) -> list[AuditLog]:  # type: ignore[no-untyped-def]
    async with transaction(client.app[appkeys.DB]) as session:
        rows = await session.exec(select(AuditLog).where(AuditLog.target == target))
        return [r for r in rows.all() if r.action.startswith("user.")]


async def test_only_an_admin_reaches_the_api_and_every_post_needs_csrf(client, settings):
    supervisor = await make_user(settings, Role.SUPERVISOR)
    await login(client, supervisor.username)
    assert (await client.get("/api/admin/users")).status == 403
    _, headers = await _admin(client, settings)
    assert (await client.get("/api/admin/users")).status == 200
    refused = await client.post("/api/admin/users", json={"username": "x1"})
    assert refused.status == 403  # no token
    bad = await client.post("/api/admin/users", json={"username": "x1"}, headers=headers)
    assert bad.status == 400


async def test_create_list_and_edit_an_advisor_each_change_audited_once(client, settings):
    _, headers = await _admin(client, settings)
    created = await client.post(
        "/api/admin/users",
        json={"username": "new-advisor", "password": PASSWORD, "role": "advisor",
              "display_name": "New Advisor", "languages": ["en"], "skills": {"general": 2}},
        headers=headers,
    )
    assert created.status == 201, await created.text()
    user = (await created.json())["user"]
    assert "password_hash" not in user and user["capacity"] == {"video": 1, "voice": 1, "text": 3}
    again = await client.post(
        "/api/admin/users",
        json={"username": "new-advisor", "password": PASSWORD, "role": "advisor"},
        headers=headers,
    )
    assert again.status == 409

    listed = (await (await client.get("/api/admin/users")).json())["users"]
    assert "new-advisor" in [u["username"] for u in listed]

    uid = user["id"]
    edit = await client.patch(
        f"/api/admin/users/{uid}",
        json={"skills": {"general": 2, "fx": 4}, "capacity": {"text": 2}, "languages": ["en", "yue"]},
        headers=headers,
    )
    assert edit.status == 200, await edit.text()
    body = await edit.json()
    assert body["changed"] == ["capacity", "languages", "skills"]
    assert body["user"]["skills"] == {"general": 2, "fx": 4}
    nothing = await client.patch(f"/api/admin/users/{uid}", json={"vip": False}, headers=headers)
    assert (await nothing.json())["changed"] == []
    invalid = await client.patch(f"/api/admin/users/{uid}", json={"skills": {"fx": 9}}, headers=headers)
    assert invalid.status == 400 and "proficiency must be 1 to 5" in await invalid.text()

    rows = await _audit_rows(client, f"user:{uid}")
    assert [r.action for r in rows] == ["user.create", "user.update"]
    assert rows[1].detail["changes"]["skills"] == {"from": {"general": 2}, "to": {"general": 2, "fx": 4}}
    assert "password" not in rows[0].detail


async def test_a_new_skill_reaches_the_router_and_a_waiting_contact_is_offered(client, settings):
    _, headers = await _admin(client, settings)
    advisor = await make_user(settings, Role.ADVISOR, languages=["en"], skills={"general": 3})
    router = client.app[appkeys.ROUTER]
    patch = await client.patch(f"/api/admin/users/{advisor.id}", json={"vip": True}, headers=headers)
    assert (await patch.json())["changed"] == ["vip"]  # not a routing field: no router write
    await router.upsert_agent(_profile(advisor))
    await router.set_agent_state(str(advisor.id), AgentState.AVAILABLE)
    assert await router.enqueue(
        ContactRequest(id="c-fx", channel=Channel.TEXT, language="en", skills={"fx": 3})
    ) is None  # nobody has fx yet

    edit = await client.patch(
        f"/api/admin/users/{advisor.id}", json={"skills": {"general": 3, "fx": 4}}, headers=headers
    )
    assert (await edit.json())["router_state"] == "busy"
    status = await router.contact_status("c-fx")
    assert status.state == "offered" and status.agent_id == str(advisor.id)


async def test_disabling_an_advisor_takes_them_out_and_ends_their_open_contacts(client, settings):
    admin, headers = await _admin(client, settings)
    advisor = await make_user(settings, Role.ADVISOR, languages=["en"], skills={"general": 3})
    router = client.app[appkeys.ROUTER]
    await router.upsert_agent(_profile(advisor))
    await router.set_agent_state(str(advisor.id), AgentState.AVAILABLE)
    async with transaction(client.app[appkeys.DB]) as session:
        contact = Contact(customer_ref="guest:x", customer_name="Guest", channels=["text"],
                          language="en", skills={"general": 1}, state="queued")
        session.add(contact)
    await router.enqueue(ContactRequest(id=contact.id, channel=Channel.TEXT, language="en",
                                        skills={"general": 1}))
    await router.accept(contact.id, str(advisor.id))
    async with transaction(client.app[appkeys.DB]) as session:
        row = await session.get(Contact, contact.id)
        assert row is not None
        row.state, row.advisor_id = "connected", advisor.id
        session.add(row)

    own = await client.patch(f"/api/admin/users/{admin.id}", json={"disabled": True}, headers=headers)
    assert own.status == 409
    done = await client.patch(f"/api/admin/users/{advisor.id}", json={"disabled": True}, headers=headers)
    body = await done.json()
    assert body["router_state"] == "offline" and body["contacts_ended"] == [contact.id]
    assert (await router.agent_status(str(advisor.id))).state == AgentState.OFFLINE
    async with transaction(client.app[appkeys.DB]) as session:
        row = await session.get(Contact, contact.id)
        assert row is not None and row.state == "ended"
    assert (await login(client, advisor.username)).status == 401
    assert [r.action for r in await _audit_rows(client, f"user:{advisor.id}")] == ["user.update"]


async def test_password_reset_gives_a_one_time_password_that_signs_in(client, settings):
    _, headers = await _admin(client, settings)
    advisor = await make_user(settings, Role.ADVISOR)
    reset = await client.post(f"/api/admin/users/{advisor.id}/password-reset", headers=headers)
    temporary = (await reset.json())["temporary_password"]
    assert len(temporary) >= 16
    assert (await client.post("/api/admin/users/999999/password-reset", headers=headers)).status == 404
    assert [r.action for r in await _audit_rows(client, f"user:{advisor.id}")] == ["user.password_reset"]
    assert (await login(client, advisor.username)).status == 401  # the old password is gone
    assert (await login(client, advisor.username, temporary)).status == 303


def _profile(user):  # type: ignore[no-untyped-def]
    from routing.models import AgentProfile

    return AgentProfile(id=str(user.id), languages=frozenset(user.languages), skills=user.skills)


@pytest.fixture
def env(tmp_path):  # type: ignore[no-untyped-def]
    return cli_env(CC_VAR_DIR=str(tmp_path / "var"), CC_LOG_JSON="false")


def test_cli_users_list_update_disable(env):  # type: ignore[no-untyped-def]
    assert run_cli("db", "upgrade", env=env).returncode == 0
    created = run_cli("users", "create", "wong", "--role", "advisor", "--languages", "yue",
                      "--password-stdin", env=env, input="a long enough password\n")
    assert created.returncode == 0, created.stderr
    update = run_cli("users", "update", "wong", "--skills", "cards:4,fx:3", "--languages", "yue,en",
                     env=env)
    assert update.returncode == 0, update.stderr
    assert "changed languages, skills" in update.stdout
    bad = run_cli("users", "update", "wong", "--skills", "cards:9", env=env)
    assert bad.returncode == 2 and "proficiency must be 1 to 5" in bad.stderr
    temporary = run_cli("users", "set-password", "wong", "--password-stdin", "--temporary",
                        env=env, input="given by the admin\n")
    assert temporary.returncode == 0, temporary.stderr
    listed = run_cli("users", "list", "--json", env=env)
    assert next(u for u in json.loads(listed.stdout) if u["username"] == "wong")["must_change_password"]
    assert " wong " in (row := next(
        line for line in run_cli("users", "list", env=env).stdout.splitlines() if " wong " in line
    )) and "new-pw" in row
    lee = run_cli("users", "create", "lee", "--role", "supervisor", "--password-stdin", "--temporary",
                  env=env, input="chosen by the admin\n")
    assert lee.returncode == 0, lee.stderr
    listed = run_cli("users", "list", "--json", env=env)
    assert next(u for u in json.loads(listed.stdout) if u["username"] == "lee")["must_change_password"]
    assert run_cli("users", "disable", "nobody", env=env).returncode == 1
    disable = run_cli("users", "disable", "wong", env=env)
    assert disable.returncode == 0 and "changed disabled" in disable.stdout
    listing = run_cli("users", "list", env=env)
    row = next(line for line in listing.stdout.splitlines() if " wong " in line)
    assert "disabled" in row and "cards:4,fx:3" in row and "yue,en" in row
