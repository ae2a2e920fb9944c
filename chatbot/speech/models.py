"""``python -m chatbot.speech.models``: download the official small Vosk models, checksums verified.

For users with internet (``make models``; never run by the tests). Each archive is checked
against its pinned SHA-256 before it is unpacked; an archive without a pinned digest is refused
(its digest is printed, for a maintainer to check against a second source and pin). Models land
in ``~/.cache/contact-center/vosk/<name>``; the line to put in ``CC_VOICE_MODELS`` is printed.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

CACHE = Path.home() / ".cache" / "contact-center" / "vosk"


class Unpinned(SystemExit):
    """The archive has no pinned digest: not installed (a warning, not a failure)."""


@dataclass(frozen=True)
class ModelArchive:
    language: str
    name: str
    sha256: str | None  # None: not pinned yet (refused)
    size: int | None = None

    @property
    def url(self) -> str:
        return f"https://alphacephei.com/vosk/models/{self.name}.zip"


MODELS = {
    # Digest and size as published by several independent projects that pin this archive.
    "en": ModelArchive("en", "vosk-model-small-en-us-0.15",
                       "30f26242c4eb449f948e42cb302dd7a686cb29a3423a8367f99ff41780942498",
                       41_205_931),
    # Not pinned: no second source for its digest could be reached from where this was written.
    "zh": ModelArchive("zh", "vosk-model-small-cn-0.22", None),
}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def install(model: ModelArchive, into: Path = CACHE) -> Path:
    """Download, verify and unpack ``model`` (a no-op when it is already there)."""
    target = into / model.name
    if (target / "am" / "final.mdl").is_file():
        return target
    into.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=into) as tmp:
        archive = Path(tmp) / f"{model.name}.zip"
        print(f"downloading {model.url}", file=sys.stderr)
        with urllib.request.urlopen(model.url, timeout=60) as resp, archive.open("wb") as out:  # noqa: S310
            shutil.copyfileobj(resp, out)
        digest = _sha256(archive)
        if model.sha256 is None:
            raise Unpinned(f"{model.name}: no pinned SHA-256, not installed (downloaded: {digest})")
        if digest != model.sha256 or (model.size is not None and archive.stat().st_size != model.size):
            raise SystemExit(f"{model.name}: checksum mismatch ({digest}), refusing it")
        with zipfile.ZipFile(archive) as z:
            for member in z.namelist():
                if member.startswith("/") or ".." in Path(member).parts:
                    raise SystemExit(f"{model.name}: unsafe path in the archive: {member}")
            z.extractall(tmp)
        shutil.move(str(Path(tmp) / model.name), target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chatbot.speech.models")
    parser.add_argument("languages", nargs="*", default=sorted(MODELS), help="en, zh")
    args = parser.parse_args(argv)
    installed = []
    failed = 0
    for language in args.languages:
        try:
            installed.append(f"{language}={install(MODELS[language])}")
        except Unpinned as exc:
            print(f"{language}: warning: {exc}", file=sys.stderr)
        except (SystemExit, OSError) as exc:
            print(f"{language}: {exc}", file=sys.stderr)
            failed += 1
    if installed:
        print("CC_VOICE_MODELS=" + ",".join(installed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
