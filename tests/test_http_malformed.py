"""Issue 13, defect 8: malformed HTTP requests get 400 (or 401/403), never 500. Data-driven:
a request in, a status out, on every endpoint that takes a POST."""

from __future__ import annotations

import pytest

from contact_center.db.models import Role
from tests.helpers import csrf_from, make_user

POSTS = ["/login", "/logout", "/api/ws-token"]
BOUNDARY = "----harbour"

#: (name, Content-Type, body)
MALFORMED = [
    ("multipart without a boundary", "multipart/form-data", b"csrf_token=x"),
    ("multipart with an empty boundary", "multipart/form-data; boundary=", b"--\r\n"),
    ("broken multipart", f"multipart/form-data; boundary={BOUNDARY}", b"not multipart at all"),
    (
        "multipart cut short",
        f"multipart/form-data; boundary={BOUNDARY}",
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\nabc'.encode(),
    ),
    (
        "multipart part in an unknown charset",
        f"multipart/form-data; boundary={BOUNDARY}",
        (
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n"
            f"Content-Type: text/plain; charset=klingon\r\n\r\nabc\r\n--{BOUNDARY}--\r\n"
        ).encode(),
    ),
    ("form in an unknown charset", "application/x-www-form-urlencoded; charset=klingon", b"a=b"),
    ("form that is not UTF-8", "application/x-www-form-urlencoded", b"csrf_token=\xff\xfe&a=\xc3"),
    ("form with a charset it is not in", "application/x-www-form-urlencoded; charset=utf-8", b"a=\xff"),
]


@pytest.mark.parametrize("path", POSTS)
@pytest.mark.parametrize(("name", "content_type", "body"), MALFORMED, ids=[m[0] for m in MALFORMED])
async def test_a_malformed_body_is_400_not_500(client, path, name, content_type, body):
    await client.get("/login")  # a session, as a browser would have
    response = await client.post(path, data=body, headers={"Content-Type": content_type})
    assert response.status == 400, (name, response.status, await response.text())
    assert "Traceback" not in await response.text()


async def test_a_malformed_body_with_the_csrf_header_is_400_too(client):
    token = csrf_from(await (await client.get("/login")).text())
    response = await client.post(
        "/login",
        data=b"username=\xff&password=\xfe",
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-CSRF-Token": token},
    )
    assert response.status == 400


@pytest.mark.parametrize(
    "username",
    ["nul\x00inside", "\x00", "tab\there", "new\nline", "x" * 65, "emoji\U0001f600", "a" * 10_000],
    ids=["nul", "only-nul", "tab", "newline", "too-long", "emoji", "very-long"],
)
async def test_an_impossible_user_name_is_a_wrong_sign_in_not_a_500(client, settings, username):
    await make_user(settings, Role.ADVISOR)
    token = csrf_from(await (await client.get("/login")).text())
    response = await client.post(
        "/login",
        data={"username": username, "password": "whatever it is", "csrf_token": token},
        allow_redirects=False,
    )
    assert response.status == 401
    assert "Wrong username or password." in await response.text()
