"""Manifests: real WebM files hashed and demuxed, canonical bytes, atomic no-overwrite write."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from recordings.manifest import (
    ManifestExists,
    build_manifest,
    canonical_json,
    describe_media,
    hash_file,
    manifest_hash,
    write_manifest,
)
from tests.recordings.sealing import record_contact


def test_hash_file_matches_hashlib(tmp_path: Path) -> None:
    data = bytes(range(256)) * 9000
    (tmp_path / "f").write_bytes(data)
    assert hash_file(tmp_path / "f", block=4096) == (hashlib.sha256(data).hexdigest(), len(data))


def test_describe_media_counts_packets_and_tolerates_a_killed_writer(tmp_path: Path) -> None:
    record_contact(tmp_path / "c1")
    video = describe_media(tmp_path / "c1" / "customer-video-0.webm")
    assert video["streams"][0]["type"] == "video" and video["streams"][0]["packets"] == 15
    assert 0.4 < video["duration_s"] < 0.6
    audio = describe_media(tmp_path / "c1" / "customer-audio-0.webm")
    assert audio["streams"][0]["packets"] == 25
    # Cut the file mid-way, as a SIGKILL would: no index, no duration; still readable.
    data = (tmp_path / "c1" / "customer-video-0.webm").read_bytes()
    (tmp_path / "cut.webm").write_bytes(data[: len(data) * 2 // 3])
    cut = describe_media(tmp_path / "cut.webm")
    assert "error" not in cut and cut["streams"][0]["packets"] <= 15  # readable after the cut
    (tmp_path / "junk.webm").write_bytes(b"not a media file")
    assert "error" in describe_media(tmp_path / "junk.webm")


def test_build_and_write_manifest(tmp_path: Path) -> None:
    directory = record_contact(tmp_path / "contact-7")
    manifest = build_manifest(
        directory, metadata={"topic": "billing", "名前": "王"}, pauses=[[1.0, 2.5]],
        previous_hash=None, status="complete",
    )
    names = [f["name"] for f in manifest["files"]]
    assert names == ["customer-audio-0.webm", "customer-video-0.webm", "timeline.jsonl"]
    assert manifest["contact_id"] == "contact-7" and manifest["pauses"] == [[1.0, 2.5]]
    assert manifest["timeline"]["sha256"] == hash_file(directory / "timeline.jsonl")[0]
    assert manifest["files"][1]["streams"][0]["packets"] == 15
    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'.encode()
    path = write_manifest(directory, manifest)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == manifest_hash(manifest)
    with pytest.raises(ManifestExists):
        write_manifest(directory, manifest)
    assert sorted(p.name for p in directory.iterdir()) == sorted([*names, "manifest.json"])
    with pytest.raises(ValueError):
        build_manifest(directory, metadata={}, pauses=[], previous_hash=None, status="done")  # type: ignore[arg-type]
