"""Export zips: what they hold, the offline check, and damage found and named."""

from __future__ import annotations

import inspect
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from recordings.export import ExportError, export_contact, verify_export
from recordings.ledger import GENESIS, append_purge, entries
from recordings.manifest import MANIFEST
from recordings.seal import seal_contact
from recordings.storage import LocalStorage
from tests.recordings.sealing import ROOT, make_tables, record_contact, sessions  # noqa: F401

CONTACTS = ["c0", "c1", "c2"]
MEDIA = "files/customer-video-0.webm"
ENV = dict(os.environ, PYTHONPATH=str(ROOT))  # this tree's recordings, not an installed one


async def _sealed(root: Path, db: async_sessionmaker[AsyncSession]) -> LocalStorage:
    for contact in CONTACTS:
        await seal_contact(record_contact(root / contact), db, metadata={"topic": "t"})
    return LocalStorage(root)


def _data_offset(path: Path, member: str) -> tuple[int, int]:
    """(offset of the member's stored bytes in the zip, their length)."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    with open(path, "rb") as file:
        file.seek(info.header_offset)
        header = file.read(30)
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_length + extra_length, info.compress_size


def _flip(source: Path, target: Path, member: str) -> None:
    shutil.copyfile(source, target)
    offset, length = _data_offset(target, member)
    data = bytearray(target.read_bytes())
    data[offset + length // 2] ^= 0x40
    target.write_bytes(bytes(data))


def _rezip(source: Path, target: Path, change: dict[str, bytes]) -> None:
    """A copy of the zip with some members' bytes replaced (valid CRCs: a careful forger)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            new.writestr(info, change.get(info.filename, old.read(info.filename)))


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=120)


def _python_snippets(readme: str) -> list[str]:
    """The ``python3 -c '...'`` commands of VERIFY.txt, as code."""
    return [
        "\n".join(line[5:] for line in block.splitlines())
        for block in re.findall(r"     python3 -c '\n(.*?)'\n", readme, re.S)
    ]


async def test_export_holds_the_files_and_chain_and_verifies(
    tmp_path: Path,
    sessions: async_sessionmaker[AsyncSession],  # noqa: F811
) -> None:
    root = tmp_path / "rec"
    storage = await _sealed(root, sessions)
    rows = await entries(sessions)
    out = tmp_path / "out" / "c1.zip"
    result = await export_contact(sessions, storage, "c1", out)
    assert result.path == out and result.seq == 2 and result.problems == []
    assert result.files == ["customer-audio-0.webm", "customer-video-0.webm", "timeline.jsonl"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["c1.zip"]  # no temporary left
    with zipfile.ZipFile(out) as archive:
        names = archive.namelist()
        assert sorted(names) == sorted(
            [MANIFEST, "SHA256SUMS", "VERIFY.txt", "ledger/chain.json", "ledger/entry.json"]
            + [f"files/{n}" for n in result.files]
        )
        for name in result.files:
            assert archive.read(f"files/{name}") == (root / "c1" / name).read_bytes()
        assert archive.read(MANIFEST) == (root / "c1" / MANIFEST).read_bytes()
        assert archive.getinfo(MEDIA).compress_type == zipfile.ZIP_STORED  # already compressed
        entry = json.loads(archive.read("ledger/entry.json"))
        chain = json.loads(archive.read("ledger/chain.json"))
        readme = archive.read("VERIFY.txt").decode()
    assert entry["entry_hash"] == rows[1].entry_hash and entry["prev_hash"] == rows[0].entry_hash
    assert chain["previous"]["entry_hash"] == rows[0].entry_hash
    assert chain["next"]["prev_hash"] == rows[1].entry_hash and chain["head"]["seq"] == 3
    assert verify_export(out) == []
    assert rows[1].entry_hash in readme and "sha256sum -c SHA256SUMS" in readme
    # The first entry: no previous one, its prev_hash is the genesis value.
    first = await export_contact(sessions, storage, "c0", tmp_path / "c0.zip")
    assert verify_export(first.path) == [] and rows[0].prev_hash == GENESIS
    # Exporting twice over the same file is refused.
    with pytest.raises(ExportError, match="exists"):
        await export_contact(sessions, storage, "c1", out)
    with pytest.raises(ExportError, match="no sealed contact"):
        await export_contact(sessions, storage, "nobody", tmp_path / "x.zip")


async def test_verify_txt_steps_work_with_sha256sum_and_python_alone(
    tmp_path: Path,
    sessions: async_sessionmaker[AsyncSession],  # noqa: F811
) -> None:
    storage = await _sealed(tmp_path / "rec", sessions)
    out = (await export_contact(sessions, storage, "c1", tmp_path / "c1.zip")).path  # has both neighbours
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(out) as archive:
        archive.extractall(unpacked)
    readme = (unpacked / "VERIFY.txt").read_text()
    sha256sum = shutil.which("sha256sum")
    if sha256sum:  # GNU coreutils, on every Linux image the project runs on
        done = _run([sha256sum, "-c", "SHA256SUMS"], unpacked)
        assert done.returncode == 0 and done.stdout.count(": OK") == 4, done.stdout + done.stderr
    snippets = _python_snippets(readme)
    assert len(snippets) == 3 and all("'" not in code for code in snippets)  # shell-quotable
    outputs = [
        _run([sys.executable, "-I", "-S", "-c", code], unpacked) for code in snippets
    ]
    assert [o.stdout.split() for o in outputs] == [
        ["sums", "True", "contact", "True"], ["True"], ["previous", "True", "next", "True"],
    ], outputs
    # The same steps catch a changed file.
    (unpacked / "files" / "timeline.jsonl").write_bytes(b"{}\n")
    if sha256sum:
        done = _run([sha256sum, "-c", "SHA256SUMS"], unpacked)
        assert done.returncode == 1 and "files/timeline.jsonl: FAILED" in done.stdout


async def test_damage_is_found_and_named(
    tmp_path: Path,
    sessions: async_sessionmaker[AsyncSession],  # noqa: F811
) -> None:
    storage = await _sealed(tmp_path / "rec", sessions)
    good = (await export_contact(sessions, storage, "c1", tmp_path / "good.zip")).path
    for member in (MEDIA, MANIFEST, "files/timeline.jsonl", "ledger/entry.json"):
        bad = tmp_path / "flipped.zip"
        _flip(good, bad, member)
        problems = verify_export(bad)
        assert problems and problems[0].startswith(f"{member}: damaged in the zip"), (member, problems)
    # Rewritten with valid CRCs: the hashes still tell.
    with zipfile.ZipFile(good) as archive:
        media = bytearray(archive.read(MEDIA))
        entry = json.loads(archive.read("ledger/entry.json"))
        manifest = json.loads(archive.read(MANIFEST))
    media[len(media) // 2] ^= 1
    cases: list[tuple[dict[str, bytes], str]] = [
        ({MEDIA: bytes(media)}, f"{MEDIA}: content differs from the manifest (SHA-256)"),
        ({"files/timeline.jsonl": b"x"}, "files/timeline.jsonl: content differs from the manifest (SHA-256, size 1 not"),
        ({"ledger/entry.json": json.dumps(dict(entry, sealed_at="2020-01-01T00:00:00.000000+00:00")).encode()},
         "ledger/entry.json: entry_hash does not match the entry"),
        ({"ledger/entry.json": json.dumps(dict(entry, prev_hash="1" * 64)).encode()},
         "ledger/entry.json: entry_hash does not match the entry"),
        ({MANIFEST: json.dumps(dict(manifest, status="incomplete"), sort_keys=True, separators=(",", ":")).encode()},
         "manifest.json: does not match the entry's manifest_hash"),
        ({MANIFEST: json.dumps(manifest, indent=1).encode()}, "manifest.json: does not match the entry's manifest_hash"),
        ({"SHA256SUMS": b"0" * 64 + b"  manifest.json\n"}, "SHA256SUMS: differs from what the manifest and entry say"),
    ]
    for change, expected in cases:
        bad = tmp_path / "rezipped.zip"
        _rezip(good, bad, change)
        problems = verify_export(bad)
        assert any(p.startswith(expected) for p in problems), (expected, problems)
    _rezip(good, tmp_path / "extra.zip", {})
    with zipfile.ZipFile(tmp_path / "extra.zip", "a") as archive:
        archive.writestr("files/added.txt", b"x")
    assert verify_export(tmp_path / "extra.zip") == ["files/added.txt: not in the manifest"]
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    assert "not a readable zip" in verify_export(tmp_path / "junk.zip")[0]


async def test_export_of_changed_storage_is_refused_unless_allowed(
    tmp_path: Path,
    sessions: async_sessionmaker[AsyncSession],  # noqa: F811
) -> None:
    root = tmp_path / "rec"
    storage = await _sealed(root, sessions)
    (root / "c1" / "timeline.jsonl").write_bytes(b"{}\n")
    out = tmp_path / "c1.zip"
    with pytest.raises(ExportError, match="files/timeline.jsonl: content differs") as refused:
        await export_contact(sessions, storage, "c1", out)
    assert refused.value.problems and not out.exists() and list(tmp_path.glob(".c1.zip*")) == []
    kept = await export_contact(sessions, storage, "c1", out, allow_problems=True)
    assert out.exists() and [p.split(":")[0] for p in kept.problems] == ["files/timeline.jsonl"]
    (root / "c2" / "customer-audio-0.webm").unlink()
    with pytest.raises(ExportError, match="not stored"):
        await export_contact(sessions, storage, "c2", tmp_path / "c2.zip")


async def test_purged_files_are_left_out_and_accounted_for(
    tmp_path: Path,
    sessions: async_sessionmaker[AsyncSession],  # noqa: F811
) -> None:
    root = tmp_path / "rec"
    storage = await _sealed(root, sessions)
    # A purge that deleted one file (the others were locked, say).
    storage.delete("c1", "customer-video-0.webm")
    await append_purge(sessions, contact_id="c1", files=["customer-video-0.webm"], actor="ops")
    result = await export_contact(sessions, storage, "c1", tmp_path / "c1.zip")
    assert result.purged == ["customer-video-0.webm"] and MEDIA[6:] not in result.files
    assert verify_export(result.path) == []
    with zipfile.ZipFile(result.path) as archive:
        chain = json.loads(archive.read("ledger/chain.json"))
        assert "customer-video-0.webm" in archive.read("VERIFY.txt").decode()
    assert [p["detail"]["files"] for p in chain["purges"]] == [["customer-video-0.webm"]]
    # A purge entry edited to hide more files than were purged is not believed.
    chain["purges"][0]["detail"]["files"].append("timeline.jsonl")
    _rezip(result.path, tmp_path / "bad.zip", {
        "ledger/chain.json": json.dumps(chain).encode(),
        "files/timeline.jsonl": b"",
    })
    problems = verify_export(tmp_path / "bad.zip")
    assert "ledger/chain.json purges[0]: detail does not match its hash" in problems
    assert any(p.startswith(f"{MEDIA}: listed in the manifest, missing") for p in problems)


def test_verify_export_needs_only_the_standard_library(tmp_path: Path) -> None:
    """The function's own source, run alone by a Python without site-packages."""
    source = "from __future__ import annotations\nimport os, sys\n" + inspect.getsource(verify_export)
    source += "\nproblems = verify_export(sys.argv[1])\nprint(len(problems))\n"
    (tmp_path / "junk.zip").write_bytes(b"junk")
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", source, str(tmp_path / "junk.zip")],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert done.returncode == 0 and done.stdout.strip() == "1", done.stderr
    probe = subprocess.run([sys.executable, "-I", "-S", "-c", "import sqlalchemy"], capture_output=True)
    assert probe.returncode != 0  # the same Python really has no third-party packages


async def test_cli_export_and_verify_export(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    engine = await make_tables(url)
    db = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
    root = tmp_path / "rec"
    try:
        await _sealed(root, db)
    finally:
        await engine.dispose()
    out = tmp_path / "c1.zip"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return _run([sys.executable, "-m", "recordings", *args], ROOT)

    done = cli("export", "--db", url, "--root", str(root), "--contact", "c1", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("exported c1 (seq 2): 3 files") and out.exists()
    done = cli("verify-export", str(out))
    assert done.returncode == 0 and done.stdout.startswith("OK"), done.stdout + done.stderr
    _flip(out, tmp_path / "bad.zip", MEDIA)
    done = cli("verify-export", str(tmp_path / "bad.zip"), "--json")
    report = json.loads(done.stdout)
    assert done.returncode == 1 and not report["ok"] and report["problems"][0].startswith(MEDIA)
    again = cli("export", "--db", url, "--root", str(root), "--contact", "c1", "--out", str(out))
    assert again.returncode == 1 and "exists" in again.stderr
