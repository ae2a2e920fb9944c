"""``contact-center serve`` freezes the heap it started with out of the collector's full
passes and widens its youngest generation (contact_center/server/heap.py); an app made in a
test process is left alone."""

from __future__ import annotations

import gc
import json
import signal
import subprocess
import sys
from pathlib import Path

from contact_center.config import load_settings
from contact_center.server import heap
from contact_center.server.app import create_app
from tests.helpers import cli_env, free_port, run_cli, wait_ready

ROOT = Path(__file__).resolve().parents[2]


def test_the_server_freezes_its_start_up_heap_once_started(tmp_path):
    port = free_port()
    env = cli_env(CC_VAR_DIR=str(tmp_path / "var"), CC_PORT=str(port), CC_LOG_JSON="true",
                  CC_LOG_LEVEL="info")  # fmt: skip
    assert run_cli("db", "upgrade", env=env).returncode == 0
    server = subprocess.Popen(
        [sys.executable, "-m", "contact_center", "serve"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        wait_ready(f"http://127.0.0.1:{port}", process=server)
    finally:
        server.send_signal(signal.SIGINT)
        _out, stderr = server.communicate(timeout=30)
    records = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    frozen = [r for r in records if r["msg"] == "heap frozen"]
    assert len(frozen) == 1, stderr[-2000:]
    # the app, its caches and the imported modules: far more than an empty interpreter's
    assert frozen[0]["objects"] > 50_000
    assert frozen[0]["young_threshold"] == heap.YOUNG_THRESHOLD
    started = next(i for i, r in enumerate(records) if r["msg"] == "heap frozen")
    serving = [i for i, r in enumerate(records) if r["msg"] == "serving"]
    assert serving and serving[0] < started


def test_an_app_made_in_this_process_does_not_freeze_it(tmp_path, monkeypatch):
    monkeypatch.setenv("CC_VAR_DIR", str(tmp_path))
    app = create_app(load_settings())
    assert all(getattr(h, "__module__", "") != "contact_center.server.heap" for h in app.on_startup)
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold()[0] != heap.YOUNG_THRESHOLD
