"""S3Storage against moto's real S3 server on loopback: Object Lock, ranges, verify.

Nothing is mocked inside the process: the storage talks HTTP to ``moto.server`` (an S3
implementation) on 127.0.0.1, as it would to MinIO or AWS. Where moto differs from AWS, the
comment says so.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from recordings.export import export_contact, verify_export
from recordings.ledger import entries
from recordings.manifest import MANIFEST
from recordings.retention import purge
from recordings.seal import SealResult, seal_contact
from recordings.storage import LocalStorage, LockedObject, S3Settings, S3Storage
from recordings.verify import verify
from tests.recordings.sealing import record_contact, sessions  # noqa: F401

KEYS = {"access_key": "testing", "secret_key": "testing", "region": "us-east-1"}


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """moto's S3 server in a thread of this process, on a free loopback port."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def _client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _bucket(endpoint: str, *, lock: bool) -> S3Storage:
    name = f"rec-{uuid.uuid4().hex[:12]}"
    _client(endpoint).create_bucket(Bucket=name, ObjectLockEnabledForBucket=lock)
    return S3Storage(
        S3Settings(bucket=name, prefix="calls", endpoint_url=endpoint, **KEYS),
        attempts=2,
        backoff=0.05,
    )


async def _seal(root: Path, db: async_sessionmaker[AsyncSession], s3: S3Storage) -> SealResult:
    return await seal_contact(record_contact(root / "c1"), db, metadata={"topic": "t"}, upload=s3)


async def test_upload_sealed_locks_every_object_until_retain_until(
    tmp_path: Path,
    endpoint: str,
    sessions: async_sessionmaker[AsyncSession],  # noqa: F811
) -> None:
    s3 = _bucket(endpoint, lock=True)
    assert s3.object_lock_enabled()
    result = await _seal(tmp_path / "rec", sessions, s3)
    names = sorted(p.name for p in (tmp_path / "rec" / "c1").iterdir())
    assert MANIFEST in names and len(names) == 4
    assert result.locations == {n: f"s3://{s3.settings.bucket}/calls/c1/{n}" for n in names}
    (stored,) = await entries(sessions)
    assert stored.locations == result.locations  # the ledger row names the S3 copies
    until = stored.retain_until
    assert until is not None and until > datetime.now(UTC) + timedelta(days=365 * 6)
    client = _client(endpoint)
    for name in names:
        key = f"calls/c1/{name}"
        body = client.get_object(Bucket=s3.settings.bucket, Key=key)["Body"].read()
        assert body == (tmp_path / "rec" / "c1" / name).read_bytes(), name
        # moto's server answers GetObjectRetention with a 500, so the lock is read from HEAD,
        # which carries ObjectLockMode / ObjectLockRetainUntilDate (S3 too). S3 keeps whole
        # seconds: the upload rounds up, so the object never unlocks before the ledger says.
        head = client.head_object(Bucket=s3.settings.bucket, Key=key)
        assert head["ObjectLockMode"] == "COMPLIANCE", name
        locked_until = head["ObjectLockRetainUntilDate"].astimezone(UTC)
        assert until <= locked_until < until + timedelta(seconds=1), (name, locked_until, until)
        assert s3.retention("c1", name) == ("COMPLIANCE", locked_until)
    assert s3.list("c1") == {n: (tmp_path / "rec" / "c1" / n).stat().st_size for n in names}
    assert s3.contacts() == ["c1"]
    # An export read from the bucket checks out offline.
    exported = await export_contact(sessions, s3, "c1", tmp_path / "c1.zip")
    assert exported.files == [n for n in names if n != MANIFEST] and verify_export(exported.path) == []


async def test_locked_versions_cannot_be_deleted(
    tmp_path: Path,
    endpoint: str,
    sessions: async_sessionmaker[AsyncSession],  # noqa: F811
) -> None:
    s3 = _bucket(endpoint, lock=True)
    await _seal(tmp_path / "rec", sessions, s3)
    (stored,) = await entries(sessions)
    assert stored.retain_until is not None
    client = _client(endpoint)
    key = "calls/c1/customer-video-0.webm"
    (version,) = client.list_object_versions(Bucket=s3.settings.bucket, Prefix=key)["Versions"]
    with pytest.raises(ClientError) as refused:
        client.delete_object(Bucket=s3.settings.bucket, Key=key, VersionId=version["VersionId"])
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    with pytest.raises(LockedObject) as locked:
        s3.delete("c1", "customer-video-0.webm")
    assert locked.value.location.startswith(f"s3://{s3.settings.bucket}/{key} (version ")
    assert locked.value.retain_until is not None
    assert abs(locked.value.retain_until - stored.retain_until) < timedelta(seconds=1)
    assert s3.open_range("c1", "customer-video-0.webm", 0, None) == (
        tmp_path / "rec" / "c1" / "customer-video-0.webm"
    ).read_bytes()
    # A purge run as if the retention had passed: S3 still refuses, the purge says so, and
    # nothing is written to the chain as purged.
    report = await purge(sessions, s3, now=stored.retain_until + timedelta(days=1))
    assert report.purged == {} and report.entries == []
    assert len(report.locked) == 4 and all("locked until" in m for m in report.locked)
    assert [e.kind for e in await entries(sessions)] == ["seal"]
    assert (await verify(sessions, s3)).ok


def test_delete_without_object_lock_removes_every_version(tmp_path: Path, endpoint: str) -> None:
    s3 = _bucket(endpoint, lock=False)
    assert not s3.object_lock_enabled()
    client = _client(endpoint)
    client.put_bucket_versioning(
        Bucket=s3.settings.bucket, VersioningConfiguration={"Status": "Enabled"}
    )
    source = tmp_path / "a.bin"
    for content in (b"one", b"two"):
        source.write_bytes(content)
        s3.put("c9", "a.bin", source, retain_until=datetime.now(UTC) + timedelta(days=9))
    key = "calls/c9/a.bin"
    versions = client.list_object_versions(Bucket=s3.settings.bucket, Prefix=key)["Versions"]
    assert len(versions) == 2 and "ObjectLockMode" not in client.head_object(
        Bucket=s3.settings.bucket, Key=key
    )
    s3.delete("c9", "a.bin")
    left = client.list_object_versions(Bucket=s3.settings.bucket, Prefix=key)
    assert not left.get("Versions") and not left.get("DeleteMarkers")
    with pytest.raises(FileNotFoundError):
        s3.delete("c9", "a.bin")


def test_open_range_returns_the_exact_bytes(tmp_path: Path, endpoint: str) -> None:
    s3 = _bucket(endpoint, lock=False)
    data = bytes(range(256)) * 40 + b"tail"
    (tmp_path / "c2").mkdir()
    (tmp_path / "c2" / "f.bin").write_bytes(data)
    (tmp_path / "c2" / "empty").write_bytes(b"")
    s3.upload_sealed("c2", tmp_path / "c2")
    local = LocalStorage(tmp_path)
    last = len(data) - 1
    spans = [(0, 0), (0, 99), (100, 4095), (last, last), (last - 3, None), (0, None),
             (5000, last + 1000), (len(data), None), (len(data) + 10, len(data) + 20), (7, 3)]
    for start, end in spans:
        expected = data[start:] if end is None else data[start : end + 1]
        got = s3.open_range("c2", "f.bin", start, end)
        assert got == expected, (start, end, len(got))
        assert local.open_range("c2", "f.bin", start, end) == expected, (start, end)
    assert s3.open_range("c2", "empty", 0, None) == b"" == local.open_range("c2", "empty", 0, None)
    assert s3.size("c2", "f.bin") == len(data) and s3.size("c2", "empty") == 0
    for call in (
        lambda: s3.open_range("c2", "nope", 0, 10),
        lambda: s3.open("c2", "nope"),
        lambda: s3.size("c2", "nope"),
    ):
        with pytest.raises(FileNotFoundError):
            call()


async def test_verify_against_s3_then_finds_a_changed_or_hidden_object(
    tmp_path: Path,
    endpoint: str,
    sessions: async_sessionmaker[AsyncSession],  # noqa: F811
) -> None:
    s3 = _bucket(endpoint, lock=True)
    root = tmp_path / "rec"
    await _seal(root, sessions, s3)
    sizes = {p.name: p.stat().st_size for p in (root / "c1").iterdir()}
    for jobs in (1, 2):  # jobs=2 pickles the storage into worker processes
        report = await verify(sessions, s3, jobs=jobs)
        assert report.ok, report.problems
        assert report.files == 3 and report.bytes_hashed == sum(sizes.values())
    client = _client(endpoint)
    bucket = s3.settings.bucket
    # Object Lock keeps the sealed version, but anyone may put a new current version over it:
    # same size, one bit changed, so only the hash can tell.
    key = "calls/c1/customer-audio-0.webm"
    data = bytearray((root / "c1" / "customer-audio-0.webm").read_bytes())
    data[len(data) // 2] ^= 0x01
    client.put_object(Bucket=bucket, Key=key, Body=bytes(data))
    versions = client.list_object_versions(Bucket=bucket, Prefix=key)["Versions"]
    assert len(versions) == 2  # the sealed version is still there, just not current
    problems = (await verify(sessions, s3)).problems
    assert [(p.contact_id, p.name) for p in problems] == [("c1", "customer-audio-0.webm")]
    assert "SHA-256 differs" in problems[0].message and "size" not in problems[0].message
    # Putting the sealed version back on top makes it pass again.
    sealed = next(v for v in versions if not v["IsLatest"])
    client.copy_object(
        Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": key, "VersionId": sealed["VersionId"]}
    )
    assert (await verify(sessions, s3)).ok
    # A plain DELETE is allowed under Object Lock: it adds a delete marker that hides the
    # object. verify reports the file as missing (the locked version itself survives).
    client.delete_object(Bucket=bucket, Key="calls/c1/timeline.jsonl")
    problems = (await verify(sessions, s3)).problems
    assert [(p.contact_id, p.name) for p in problems] == [("c1", "timeline.jsonl")]
    assert "missing" in problems[0].message
    # An object added beside the sealed ones; then the manifest hidden the same way.
    client.put_object(Bucket=bucket, Key="calls/c1/extra.txt", Body=b"x")
    named = {(p.name, p.message) for p in (await verify(sessions, s3)).problems}
    assert ("extra.txt", "file is not in the manifest") in named, named
    client.delete_object(Bucket=bucket, Key=f"calls/c1/{MANIFEST}")
    named = {(p.name, p.message) for p in (await verify(sessions, s3)).problems}
    assert (MANIFEST, "manifest is missing") in named, named


def test_only_transient_errors_are_retried(
    tmp_path: Path, endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    missing = S3Storage(
        S3Settings(bucket="no-such-bucket-here", endpoint_url=endpoint, **KEYS), backoff=0.01
    )
    (tmp_path / "c3").mkdir()
    (tmp_path / "c3" / "a.txt").write_text("a")
    with caplog.at_level("WARNING", logger="recordings.storage"), pytest.raises(ClientError) as failed:
        missing.upload_sealed("c3", tmp_path / "c3")
    assert failed.value.response["Error"]["Code"] == "NoSuchBucket"
    assert not [r for r in caplog.records if "retry" in r.getMessage()]  # failed at once
    # A 503 (what S3 answers when it sheds load) is retried until it goes away.
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ClientError(
                {"Error": {"Code": "SlowDown"}, "ResponseMetadata": {"HTTPStatusCode": 503}},
                "PutObject",
            )
        return "stored"

    assert missing._retry(flaky, "flaky put") == "stored" and len(calls) == 3
