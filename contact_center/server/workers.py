"""Several server processes on one machine (``contact-center serve --workers N``).

The parent binds the public socket once and every worker accepts on it (the kernel spreads
connections), so a page, an API call or a WebSocket may land on any worker: all state is in
Redis and the database. A contact's media lives in the worker where it started; each worker
also listens on a port of its own (``port + 1 + i``), which offers name as ``media_url`` so that
the other party's peer connection reaches that very process. With no Redis URL the parent runs
the embedded Valkey that all workers share. Workers die with the parent; a worker that exits
is restarted (at most five times a minute).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import deque

from aiohttp import web
from prometheus_client.multiprocess import mark_process_dead

from contact_center.config import Settings

log = logging.getLogger(__name__)

WORKER_FD_ENV = "CC_WORKER_LISTEN_FD"
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
RESTARTS_PER_MINUTE = 5


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def supervise(settings: Settings, sock: socket.socket) -> int:
    """Run ``settings.workers`` workers on ``sock`` until SIGINT/SIGTERM; returns an exit code."""
    from contact_center.server.valkey import EmbeddedValkey

    valkey = None
    env = dict(os.environ)
    if settings.embedded_redis:
        valkey = EmbeddedValkey(settings.var_dir / "valkey")
        env["CC_REDIS_URL"] = valkey.start()
    env[WORKER_FD_ENV] = str(sock.fileno())
    # Prometheus multiprocess mode: each worker writes its instruments to files here and any
    # worker's /metrics sums them. Emptied first: values of an earlier run would add up.
    metrics_dir = settings.var_dir / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    env[METRICS_DIR_ENV] = str(metrics_dir)
    # what the parent was told on its command line holds for the workers too
    env.update(
        CC_HOST=settings.host, CC_PORT=str(settings.port), CC_PUBLIC_BASE_URL=settings.public_base_url
    )
    sock.set_inheritable(True)
    stopping = False

    def start(index: int) -> subprocess.Popen[bytes]:
        worker_env = {**env, "CC_MEDIA_PORT": str(settings.port + 1 + index), "CC_WORKERS": "1"}
        return subprocess.Popen(
            [sys.executable, "-m", "contact_center", "serve"],
            env=worker_env,
            pass_fds=(sock.fileno(),),
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - the main thread forks
        )

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    workers = {i: start(i) for i in range(settings.workers)}
    restarts: deque[float] = deque()
    log.info(
        "workers started",
        extra={"workers": settings.workers, "pids": [p.pid for p in workers.values()]},
    )
    code = 0
    try:
        while not stopping:
            time.sleep(0.2)
            for index, process in list(workers.items()):
                if process.poll() is None:
                    continue
                now = time.monotonic()
                while restarts and now - restarts[0] > 60:
                    restarts.popleft()
                if len(restarts) >= RESTARTS_PER_MINUTE:
                    log.error("workers keep exiting; giving up")
                    stopping, code = True, 1
                    break
                restarts.append(now)
                log.warning("worker %d exited with %s; restarting", index, process.returncode)
                mark_process_dead(process.pid, str(metrics_dir))  # its live gauges go
                workers[index] = start(index)
    finally:
        for process in workers.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 15
        for process in workers.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            if process.poll() is None:
                process.kill()
        if valkey is not None:
            valkey.stop()
    return code


def inherited_socket() -> socket.socket | None:
    """The public socket the supervisor passed down, if this process is a worker."""
    fd = os.environ.get(WORKER_FD_ENV)
    if not fd:
        return None
    return socket.socket(fileno=int(fd))


async def run_worker(
    app: web.Application, shared: socket.socket, host: str, media_port: int
) -> None:
    """Serve ``app`` on the shared public socket and on this worker's own media port."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=10)
    await runner.setup()
    try:
        await web.SockSite(runner, shared).start()
        await web.TCPSite(runner, host, media_port, reuse_address=True).start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
