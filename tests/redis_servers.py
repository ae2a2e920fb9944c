"""Real ``redis-server`` processes on loopback for the tests of the distributed set-ups
(Sentinel; each started here, in a directory of the test's, and killed by PID at the end)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from tests.helpers import free_port

REDIS_SERVER = shutil.which("redis-server") or shutil.which("valkey-server")


def require_redis_server() -> str:
    if REDIS_SERVER is None:
        pytest.skip("needs redis-server (or valkey-server) on PATH")
    return REDIS_SERVER


@dataclass
class RedisProcess:
    """One server (or sentinel) from a config file of its own."""

    directory: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def start(self, *lines: str, sentinel: bool = False) -> RedisProcess:
        binary = require_redis_server()
        self.directory.mkdir(parents=True, exist_ok=True)
        conf = self.directory / "redis.conf"
        conf.write_text("\n".join([
            f"port {self.port}", "bind 127.0.0.1", "protected-mode no", f'dir "{self.directory}"',
            'save ""', "appendonly no", f'logfile "{self.directory / "log"}"', *lines,
        ]) + "\n")
        args = [binary, str(conf)] + (["--sentinel"] if sentinel else [])
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port, socket_timeout=0.5).ping()
                return self
            except redis.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on {self.port} did not start: "
                                       f"{(self.directory / 'log').read_text()[-2000:]}") from None
                time.sleep(0.05)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2, decode_responses=True)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


@dataclass
class SentinelGroup:
    """A primary, a replica and three sentinels watching them as ``service``."""

    root: Path
    service: str = "mymaster"
    primary: RedisProcess = field(init=False)
    replica: RedisProcess = field(init=False)
    sentinels: list[RedisProcess] = field(default_factory=list)

    def start(self) -> SentinelGroup:
        self.primary = RedisProcess(self.root / "primary").start()
        self.replica = RedisProcess(self.root / "replica").start(
            f"replicaof 127.0.0.1 {self.primary.port}"
        )
        for n in range(3):
            self.sentinels.append(RedisProcess(self.root / f"sentinel{n}").start(
                f"sentinel monitor {self.service} 127.0.0.1 {self.primary.port} 2",
                f"sentinel down-after-milliseconds {self.service} 1000",
                f"sentinel failover-timeout {self.service} 10000",
                f"sentinel parallel-syncs {self.service} 1",
                sentinel=True,
            ))
        self._wait(lambda: all(self._knows_everyone(s) for s in self.sentinels), "sentinels meet")
        return self

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", s.port) for s in self.sentinels]

    def primary_port(self) -> int:
        host, port = self.sentinels[0].client().sentinel_get_master_addr_by_name(self.service)
        return int(port)

    def _knows_everyone(self, sentinel: RedisProcess) -> bool:
        client = sentinel.client()
        replicas = client.sentinel_slaves(self.service)
        peers = client.sentinel_sentinels(self.service)
        return len(replicas) == 1 and "s_down" not in replicas[0]["flags"] and len(peers) == 2

    @staticmethod
    def _wait(check, what: str, seconds: float = 30) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + seconds
        while not check():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not within {seconds} s")
            time.sleep(0.1)

    def wait_replicated(self) -> None:
        """Every write so far reached the replica (Redis replicates asynchronously)."""
        self.primary.client().execute_command("WAIT", 1, 5000)

    def stop(self) -> None:
        for proc in [*self.sentinels, self.replica, self.primary]:
            proc.kill()
