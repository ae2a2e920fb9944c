"""Which process writes a contact's recording directory: an exclusive claim, held until sealed.

A claim is an exclusive ``flock`` on ``<root>/.claims/<contact id>.lock``, taken *before* the
contact's directory is created and released only after it is sealed (and uploaded). The kernel
drops the lock when its process dies, SIGKILL included, so on a machine:

- a directory whose claim can be taken, and that has no ``manifest.json``, was left by a
  process that died (or stopped) before sealing it: it is to be sealed ``incomplete``;
- a directory whose claim is held belongs to a live process (another worker): leave it be.

There is no window in which a live writer's directory is unclaimed, because the claim exists
before the directory does. ``flock`` locks belong to an open file description, so a second
claim in the *same* process is refused too. The lock files live in a dot-directory, which the
storage does not list as a contact.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from recordings.manifest import MANIFEST

__all__ = ["CLAIMS", "Claim", "ClaimHeld", "unsealed"]

CLAIMS = ".claims"


class ClaimHeld(BlockingIOError):
    """Another live process (or another claim in this one) holds the contact's directory."""


def _lock_path(root: Path, contact_id: str) -> Path:
    if not contact_id or "/" in contact_id or contact_id.startswith("."):
        raise ValueError(f"bad contact id {contact_id!r}")
    return root / CLAIMS / f"{contact_id}.lock"


class Claim:
    """An exclusive claim on one contact's recording directory (``Claim.take``)."""

    def __init__(self, root: Path, contact_id: str, fd: int) -> None:
        self.root = root
        self.contact_id = contact_id
        self.path = _lock_path(root, contact_id)
        self._fd: int | None = fd

    @classmethod
    def take(cls, root: str | os.PathLike[str], contact_id: str) -> Claim:
        """Claim ``contact_id`` now or raise ``ClaimHeld`` (never waits)."""
        root = Path(root)
        path = _lock_path(root, contact_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ClaimHeld(f"recording of contact {contact_id} is claimed by a live process") from None
        except BaseException:
            os.close(fd)
            raise
        return cls(root, contact_id, fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    @property
    def directory(self) -> Path:
        return self.root / self.contact_id

    def release(self) -> None:
        """Give the claim up (idempotent). The lock file is removed when the directory is
        sealed or gone; a process that opened it meanwhile finds the manifest and leaves."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        if (self.directory / MANIFEST).exists() or not self.directory.exists():
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        os.close(fd)

    def __enter__(self) -> Claim:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"Claim({self.contact_id!r}, held={self.held})"


def unsealed(root: str | os.PathLike[str]) -> Iterator[Claim]:
    """Claims on every contact directory under ``root`` that has no manifest and no live
    writer, oldest first: each is the caller's to seal (and release)."""
    root = Path(root)
    if not root.is_dir():
        return
    directories = [
        p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
    ]
    for directory in sorted(directories, key=lambda p: (p.stat().st_mtime, p.name)):
        if (directory / MANIFEST).exists():
            continue
        try:
            claim = Claim.take(root, directory.name)
        except ClaimHeld:
            continue
        if (directory / MANIFEST).exists():  # sealed while we were looking
            claim.release()
            continue
        yield claim
