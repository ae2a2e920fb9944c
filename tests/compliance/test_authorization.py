"""Who may use the compliance console: the compliance role only, every endpoint and page.

The routes come from ``views.compliance.ROUTES``, so a route added later is in the matrix.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from contact_center import appkeys
from contact_center.db.models import Role
from contact_center.views.compliance import ROUTES
from tests.compliance.conftest import Officer, csrf_of
from tests.compliance.recording import make_contact
from tests.helpers import login, make_user

#: Open to the compliance role without a case: the pages (they ask for the reason) and what the
#: form's lists hold (advisors' names, languages, topics; no contact in it).
NO_GRANT_NEEDED = {"/api/compliance/grants", "/api/compliance/facets"}


def _concrete(path: str, contact_id: str) -> str:
    path = re.sub(r"\{contact_id:[^}]+\}\}?", contact_id, path)
    path = re.sub(r"\{name:[^}]+\}\}?", "customer-video-1.webm", path)
    return re.sub(r"\{export_id:[^}]+\}\}?", f"{contact_id}.0123456789abcdef", path)


def _requests(contact_id: str) -> list[tuple[str, str]]:
    return [(method, _concrete(path, contact_id)) for method, path, _ in ROUTES]


def test_the_matrix_covers_every_route() -> None:
    requests = _requests("abc")
    assert len(requests) == len(ROUTES) >= 15
    assert all("{" not in path for _, path in requests), requests
    pages = [path for method, path in requests if not path.startswith("/api/")]
    assert pages == ["/compliance/contacts/abc", "/compliance/audit"]


async def _send(client: Any, method: str, path: str, csrf: str | None) -> Any:
    headers = {"X-CSRF-Token": csrf} if csrf else {}
    if method == "GET":
        return await client.get(path, headers=headers, allow_redirects=False)
    return await client.post(
        path, json={"reason": "x" * 20}, headers=headers, allow_redirects=False
    )


@pytest.fixture
async def contact_id(client: Any) -> str:
    made = await make_contact(
        client.app[appkeys.DB], customer_name=f"Matrix {uuid.uuid4().hex[:6]}"
    )
    return made.contact.id


@pytest.mark.parametrize("role", [Role.ADVISOR, Role.SUPERVISOR, Role.CUSTOMER, Role.ADMIN])
async def test_other_roles_get_403_on_every_endpoint_and_page(
    client: Any, settings: Any, contact_id: str, role: Role
) -> None:
    user = await make_user(settings, role)
    assert (await login(client, user.username)).status == 303
    csrf = await csrf_of(client)  # a valid token: the role check is what refuses
    for method, path in [("GET", "/compliance"), *_requests(contact_id)]:
        response = await _send(client, method, path, csrf)
        assert response.status == 403, (role, method, path, response.status)
        assert "compliance" in await response.text()


async def test_a_guest_customer_gets_403_too(client: Any, contact_id: str) -> None:
    assert (await client.get("/")).status == 200  # a guest identity with its cookie
    csrf = await csrf_of(client)
    for method, path in [("GET", "/compliance"), *_requests(contact_id)]:
        response = await _send(client, method, path, csrf)
        assert response.status == 403, (method, path, response.status)


async def test_anonymous_gets_401_on_the_api_and_sign_in_for_pages(
    client: Any, contact_id: str
) -> None:
    csrf = await csrf_of(client)  # a session without identity, so CSRF is not what refuses
    for method, path in [("GET", "/compliance"), *_requests(contact_id)]:
        response = await _send(client, method, path, csrf)
        if path.startswith("/api/"):
            assert response.status == 401, (method, path, response.status)
        else:
            assert response.status == 302, (method, path, response.status)
            assert response.headers["Location"] == f"/login?next={path}"


async def test_compliance_without_a_case_is_refused_everywhere_but_the_grant(
    officer: Officer, contact_id: str
) -> None:
    for method, path in _requests(contact_id):
        if not path.startswith("/api/") or path in NO_GRANT_NEEDED:
            continue
        response = await _send(officer.client, method, path, officer.csrf)
        assert response.status == 403, (method, path, response.status)
        assert (await response.json())["error"] == "reason_required", path
    for path in ("/compliance", f"/compliance/contacts/{contact_id}", "/compliance/audit"):
        page = await officer.client.get(path)
        assert page.status == 200, path
        assert 'id="case-gate"' in await page.text(), path


async def test_a_case_covers_only_its_contacts(
    officer: Officer, contact_id: str, client: Any
) -> None:
    other = await make_contact(client.app[appkeys.DB], customer_name="Someone Else")
    await officer.open_case(contacts=[contact_id])
    for method, path in _requests(other.contact.id):
        if not path.startswith(("/api/compliance/contacts/", "/api/compliance/exports/")):
            continue
        if method == "GET":
            response = await officer.get(path)
        else:
            response = await officer.post(path, {"held": True, "reason": "x" * 12})
        assert response.status == 403, (method, path, response.status)
        assert (await response.json())["error"] == "not_in_grant", path
