"""Run the Rasa server and the action server as child processes on loopback.

The children get PR_SET_PDEATHSIG, so they die with the process that started them even when it
is killed outright (tests, `make run`). Linux sends that signal when the *thread* that forked the
child ends, so call ``start()`` from the main thread (or a thread that lives as long as the
servers should).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from chatbot.env import RASA_DIR, rasa_environ

LOOPBACK = "127.0.0.1"
_PR_SET_PDEATHSIG = 1


class ServiceError(RuntimeError):
    """A Rasa process did not start or become healthy."""


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that is free on host right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "".join(path.read_text(errors="replace").splitlines(keepends=True)[-lines:])
    except OSError:
        return "(no log)"


class RasaServices:
    """The Rasa server (REST channel + HTTP API) and its action server, on loopback ports."""

    def __init__(self, env_dir: Path, model_path: Path, *, rasa_port: int = 5005,
                 actions_port: int = 5055, log_dir: Path, rasa_dir: Path = RASA_DIR) -> None:
        self.env_dir = Path(env_dir)
        self.model_path = Path(model_path)
        self.rasa_port = rasa_port
        self.actions_port = actions_port
        self.log_dir = Path(log_dir)
        self.rasa_dir = Path(rasa_dir)
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, IO[bytes]] = {}

    @property
    def url(self) -> str:
        """Base URL of the Rasa server."""
        return f"http://{LOOPBACK}:{self.rasa_port}"

    @property
    def actions_url(self) -> str:
        """Base URL of the action server."""
        return f"http://{LOOPBACK}:{self.actions_port}"

    @property
    def running(self) -> bool:
        return bool(self._procs) and all(p.poll() is None for p in self._procs.values())

    def log_path(self, name: str) -> Path:
        """Log file of "rasa" or "actions"."""
        return self.log_dir / f"{name}.log"

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        log = self.log_path(name).open("wb")
        self._logs[name] = log
        if threading.current_thread() is not threading.main_thread():
            print(f"warning: {name} started off the main thread dies when that thread ends",
                  file=sys.stderr)
        self._procs[name] = subprocess.Popen(
            [str(self.env_dir / "bin" / "python"), "-m", *args],
            cwd=self.rasa_dir, env=rasa_environ(env), stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,  # noqa: PLW1509
            start_new_session=True,  # our own group, so stop() also ends grandchildren
        )

    def start(self, timeout: float = 180.0) -> None:
        """Start both servers and wait until the model is loaded and actions answer."""
        if self._procs:
            raise ServiceError("already started; stop() first")
        if not (self.env_dir / "bin" / "python").exists():
            raise ServiceError(f"no Rasa env at {self.env_dir}: run `python -m chatbot.env ensure`")
        if not self.model_path.is_file():
            raise ServiceError(f"no model at {self.model_path}: run `python -m chatbot.env ensure`")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        endpoints = self.log_dir / "endpoints.yml"
        endpoints.write_text(f'action_endpoint:\n  url: "{self.actions_url}/webhook"\n')
        try:
            # rasa-sdk binds 0.0.0.0 unless told otherwise; we serve loopback only
            self._spawn("actions", ["rasa_sdk", "--actions", "actions", "--port",
                                    str(self.actions_port)], env={"SANIC_HOST": LOOPBACK})
            # Rasa's CLI with two of its per-turn costs taken out (chatbot/rasa/speedups.py)
            self._spawn("rasa", [
                "speedups", "run", "--enable-api", "--interface", LOOPBACK, "--port", str(self.rasa_port),
                "--model", str(self.model_path), "--endpoints", str(endpoints),
                "--credentials", str(self.rasa_dir / "credentials.yml"),
            ])
            deadline = time.monotonic() + timeout
            self._wait("actions", f"{self.actions_url}/health", deadline,
                       lambda body: body.get("status") == "ok")
            self._wait("rasa", f"{self.url}/status", deadline, lambda body: bool(body.get("model_file")))
        except BaseException:
            self.stop()
            raise

    def _wait(self, name: str, url: str, deadline: float,
              healthy: Callable[[dict[str, Any]], bool]) -> None:
        proc = self._procs[name]
        while True:
            code = proc.poll()
            if code is not None:
                raise ServiceError(f"{name} exited with {code} while starting; log "
                                   f"{self.log_path(name)}:\n{_tail(self.log_path(name))}")
            with contextlib.suppress(OSError, ValueError), urllib.request.urlopen(url, timeout=2) as resp:
                if healthy(json.loads(resp.read() or b"{}")):
                    return
            if time.monotonic() > deadline:
                raise ServiceError(f"{name} not healthy at {url} before the timeout; log "
                                   f"{self.log_path(name)}:\n{_tail(self.log_path(name))}")
            time.sleep(0.5)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop both servers (SIGTERM, then SIGKILL); safe to call more than once."""
        procs, self._procs = self._procs, {}
        for proc in procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        logs, self._logs = self._logs, {}
        for log in logs.values():
            log.close()

    def __enter__(self) -> RasaServices:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
