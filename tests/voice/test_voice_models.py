"""``make models``' downloader, offline: a file:// archive stands in for alphacephei.com."""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from chatbot.speech.models import ModelArchive, install


@dataclass(frozen=True)
class LocalArchive(ModelArchive):
    source: Path = Path()

    @property
    def url(self) -> str:
        return self.source.as_uri()


def _archive(tmp_path: Path) -> Path:
    path = tmp_path / "m.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("vosk-model-x/am/final.mdl", b"model")
    return path


def test_a_verified_archive_is_unpacked_once(tmp_path: Path) -> None:
    source = _archive(tmp_path)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    model = LocalArchive("xx", "vosk-model-x", digest, source.stat().st_size, source=source)
    target = install(model, tmp_path / "cache")
    assert (target / "am" / "final.mdl").read_bytes() == b"model"
    source.unlink()  # already there: nothing is downloaded again
    assert install(model, tmp_path / "cache") == target


@pytest.mark.parametrize("digest", ["0" * 64, None])
def test_a_wrong_or_unpinned_checksum_is_refused(tmp_path: Path, digest: str | None) -> None:
    source = _archive(tmp_path)
    model = LocalArchive("xx", "vosk-model-x", digest, source=source)
    with pytest.raises(SystemExit, match="checksum mismatch|no pinned SHA-256"):
        install(model, tmp_path / "cache")
    assert not (tmp_path / "cache" / "vosk-model-x").exists()
