"""Byte ranges of recording files: the parser, then the right slices through the real app."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from contact_center import appkeys
from contact_center.compliance.ranges import RangeNotSatisfiable, parse_range
from tests.compliance.conftest import Officer
from tests.compliance.recording import make_contact, record, seal

NAME = "customer-video-1.webm"


@pytest.mark.parametrize(
    ("header", "size", "spans"),
    [
        (None, 1000, None),
        ("bytes=0-99", 1000, [(0, 99)]),
        ("bytes=100-", 1000, [(100, 999)]),
        ("bytes=-100", 1000, [(900, 999)]),
        ("bytes=-5000", 1000, [(0, 999)]),  # a suffix longer than the file: all of it
        ("bytes=990-2000", 1000, [(990, 999)]),  # an end past the file is cut
        ("bytes=0-0", 1000, [(0, 0)]),
        ("Bytes = 0-9 , 20-29", 1000, [(0, 9), (20, 29)]),
        ("bytes=20-29,0-9", 1000, [(20, 29), (0, 9)]),
    ],
)
def test_ranges_that_are_served(header: str | None, size: int, spans: Any) -> None:
    assert parse_range(header, size) == spans


@pytest.mark.parametrize(
    "header",
    [
        "bytes=1000-",  # starts at the end
        "bytes=5000-6000",
        "bytes=-0",
        "bytes=10-5",
        "bytes=abc",
        "bytes=",
        "bytes=-",
        "items=0-10",
        "bytes=0-10,5-20",  # overlapping
        "bytes=0-10,10-20",  # sharing a byte
        "bytes=0-1,2-3,4-5,6-7,8-9,10-11,12-13,14-15,16-17",  # too many
    ],
)
def test_ranges_that_are_refused(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, 1000)


def test_any_range_of_an_empty_file_is_refused() -> None:
    for header in ("bytes=0-", "bytes=-1", "bytes=0-0"):
        with pytest.raises(RangeNotSatisfiable):
            parse_range(header, 0)


@pytest.fixture
async def media(client: Any, settings: Any, officer: Officer) -> dict[str, Any]:
    made = await make_contact(client.app[appkeys.DB], customer_name=f"Range {uuid.uuid4().hex[:6]}")
    directory = await record(settings.recordings_dir, made, audio=False)
    await seal(client.app[appkeys.DB], directory)
    await officer.open_case(contacts=[made.contact.id])
    data = (directory / NAME).read_bytes()
    assert len(data) > 1000
    return {"url": f"/api/compliance/contacts/{made.contact.id}/media/{NAME}", "data": data}


async def test_media_byte_ranges_give_the_right_slices(
    officer: Officer, media: dict[str, Any]
) -> None:
    url, data = media["url"], media["data"]
    size = len(data)
    whole = await officer.get(url)
    assert whole.status == 200
    assert whole.headers["Accept-Ranges"] == "bytes"
    assert whole.headers["Content-Type"] == "video/webm"
    assert int(whole.headers["Content-Length"]) == size
    assert await whole.read() == data
    for header, start, end in (
        ("bytes=0-99", 0, 99),
        ("bytes=100-", 100, size - 1),
        ("bytes=-100", size - 100, size - 1),
        (f"bytes={size - 10}-{size + 500}", size - 10, size - 1),
    ):
        part = await officer.get(url, headers={"Range": header})
        assert part.status == 206, header
        assert part.headers["Accept-Ranges"] == "bytes"
        assert part.headers["Content-Range"] == f"bytes {start}-{end}/{size}", header
        assert int(part.headers["Content-Length"]) == end - start + 1
        assert await part.read() == data[start : end + 1], header


async def test_out_of_range_or_overlapping_is_416(officer: Officer, media: dict[str, Any]) -> None:
    url, size = media["url"], len(media["data"])
    for header in (
        f"bytes={size}-",
        f"bytes={size + 10}-{size + 20}",
        "bytes=0-50,40-60",
        "bytes=-0",
        "bytes=9-3",
        "bytes=x-y",
    ):
        response = await officer.get(url, headers={"Range": header})
        assert response.status == 416, header
        assert response.headers["Content-Range"] == f"bytes */{size}"
        assert (await response.json())["error"] == "range_not_satisfiable"


async def test_two_ranges_come_as_multipart_byteranges(
    officer: Officer, media: dict[str, Any]
) -> None:
    url, data = media["url"], media["data"]
    response = await officer.get(url, headers={"Range": "bytes=0-9,500-519"})
    assert response.status == 206
    kind = response.headers["Content-Type"]
    assert kind.startswith("multipart/byteranges; boundary=")
    boundary = kind.split("boundary=", 1)[1]
    body = await response.read()
    parts = [p for p in body.split(f"--{boundary}".encode()) if p.strip() not in (b"", b"--")]
    assert len(parts) == 2
    for part, (start, end) in zip(parts, [(0, 9), (500, 519)], strict=True):
        head, _, payload = part.partition(b"\r\n\r\n")
        assert f"Content-Range: bytes {start}-{end}/{len(data)}".encode() in head
        assert payload.removesuffix(b"\r\n") == data[start : end + 1]


async def test_head_and_unknown_files(officer: Officer, media: dict[str, Any]) -> None:
    url, size = media["url"], len(media["data"])
    head = await officer.client.head(url, headers=officer.headers())
    assert head.status == 200 and int(head.headers["Content-Length"]) == size
    for other in ("advisor-video-9.webm", "manifest.json", "timeline.jsonl", "..%2Fx.webm"):
        response = await officer.get(url.rsplit("/", 1)[0] + "/" + other)
        assert response.status == 404, other
