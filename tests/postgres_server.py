"""A PostgreSQL of a test's own on loopback (never the machine's), to stop and start again.

Debian's server binaries (``/usr/lib/postgresql/<version>/bin``) refuse to run as root, so
as root every command runs as the ``postgres`` OS user (``runuser``) in a directory it owns
(as anyone else, as that user). The server is stopped with ``pg_ctl`` and, should that fail,
killed by the PID it wrote.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import free_port

OS_USER = "postgres"


def _binaries() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: p.parent.parent.name)
    return found[-1].parent if found else None


def _as_root() -> bool:
    return os.geteuid() == 0


def require_postgres() -> Path:
    """The directory of ``initdb`` and ``pg_ctl``, or the test is skipped saying why."""
    bin_dir = _binaries()
    if bin_dir is None:
        pytest.skip("needs PostgreSQL's server binaries (/usr/lib/postgresql/*/bin: initdb, pg_ctl)")
    if _as_root():
        if shutil.which("runuser") is None:
            pytest.skip("needs runuser to run PostgreSQL as its own OS user (we are root)")
        try:
            pwd.getpwnam(OS_USER)
        except KeyError:
            pytest.skip(f"needs an OS user {OS_USER!r} to run PostgreSQL as (we are root)")
    return bin_dir


@dataclass
class PostgresProcess:
    """One cluster (``initdb``) in a temporary directory, served on a free loopback port."""

    port: int = field(default_factory=free_port)
    root: Path = field(init=False)
    bin_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.bin_dir = require_postgres()
        # Not under pytest's tmp dir: the postgres user cannot enter root's private folders.
        self.root = Path(tempfile.mkdtemp(prefix="cc-test-pg-"))
        if _as_root():
            shutil.chown(self.root, user=OS_USER, group=OS_USER)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> str:
        done = subprocess.run(
            ["runuser", "-u", OS_USER, "--", *args] if _as_root() else list(args),
            capture_output=True, text=True, timeout=timeout, check=False, cwd=self.root,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed: {done.stdout[-1500:]}{done.stderr[-1500:]}")
        return done.stdout

    def init(self) -> PostgresProcess:
        self._run(str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions")
        return self

    def start(self) -> None:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
                   "-c max_connections=100")
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"),
                  "-o", options, "-w", "-t", "60", "start")

    def stop_immediately(self) -> None:
        """Like a crash: every backend quits at once, nothing is flushed but the WAL."""
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                  "stop")

    def _pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def destroy(self) -> None:
        """Stop it if it runs, and remove its files."""
        pid = self._pid()
        if pid is not None:
            try:
                self.stop_immediately()
            except (RuntimeError, subprocess.TimeoutExpired):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        try:
            return (self.root / "log").read_text()[-3000:]
        except OSError:
            return ""

    async def create_database(self, name: str) -> str:
        """A new database on it; returns its URL."""
        import asyncpg

        conn = await asyncpg.connect(self.url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return self.url.rsplit("/", 1)[0] + f"/{name}"

