"""chatbot.services: start, health, failure reporting, idempotent stop, dying with the parent."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from chatbot import env
from chatbot.services import RasaServices, ServiceError, free_port

pytestmark = pytest.mark.rasa


def test_stop_is_idempotent_and_start_fails_clearly(rasa_paths: env.RasaPaths, tmp_path: Path) -> None:
    assert rasa_paths.env_dir is not None
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        services = RasaServices(rasa_paths.env_dir, rasa_paths.model_path, rasa_port=free_port(),
                                actions_port=busy.getsockname()[1], log_dir=tmp_path)
        with pytest.raises(ServiceError, match="actions") as info:
            services.start(timeout=60)
    assert "actions.log" in str(info.value)  # names the log and quotes its tail
    assert not services.running
    services.stop()
    services.stop()


def test_missing_model_is_reported_before_starting(rasa_paths: env.RasaPaths, tmp_path: Path) -> None:
    assert rasa_paths.env_dir is not None
    services = RasaServices(rasa_paths.env_dir, tmp_path / "none.tar.gz", log_dir=tmp_path)
    with pytest.raises(ServiceError, match="chatbot.env ensure"):
        services.start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead too
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().split()[2] != "Z"


@pytest.mark.slow
def test_servers_die_with_their_parent(rasa_paths: env.RasaPaths, tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from chatbot.services import RasaServices
        s = RasaServices(Path({str(rasa_paths.env_dir)!r}), Path({str(rasa_paths.model_path)!r}),
                         rasa_port={free_port()}, actions_port={free_port()}, log_dir=Path({str(tmp_path)!r}))
        s.start()
        print(*[p.pid for p in s._procs.values()], flush=True)
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              env=env.rasa_environ())
    try:
        assert parent.stdout is not None
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2 and all(_alive(p) for p in pids)
    finally:
        parent.send_signal(signal.SIGKILL)  # no cleanup code runs in the parent
        parent.wait()
    deadline = time.monotonic() + 30
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(p) for p in pids)
