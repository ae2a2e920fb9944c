"""Real ``redis-server`` processes on loopback for the tests of the distributed set-ups
(Sentinel, Cluster; each started here, in a directory of the test's, and killed by PID at the
end)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from contact_center.redis_client import cluster_client
from tests.helpers import free_port

REDIS_SERVER = shutil.which("redis-server") or shutil.which("valkey-server")
REDIS_CLI = shutil.which("redis-cli") or shutil.which("valkey-cli")

#: Runs a test on a plain Redis and again on the Redis Cluster (``on_cluster`` in conftest).
ON_CLUSTER_TOO = pytest.mark.parametrize("on_cluster", [False, True], ids=["redis", "cluster"])


def require_redis_server() -> str:
    if REDIS_SERVER is None:
        pytest.skip("needs redis-server (or valkey-server) on PATH")
    return REDIS_SERVER


@dataclass(frozen=True)
class RedisTarget:
    """The Redis of one test: a server's URL, or the nodes of a cluster."""

    url: str | None = None
    cluster: list[tuple[str, int]] = field(default_factory=list)

    def client(self, max_connections: int | None = None) -> aioredis.Redis:
        """A client of it (a cluster client keeps a pool per node, unbounded)."""
        if self.cluster:
            return cluster_client(self.cluster)
        assert self.url is not None
        return aioredis.Redis.from_url(
            self.url, decode_responses=True, max_connections=max_connections
        )

    def to_json(self) -> dict[str, object]:
        return {"url": self.url, "cluster": self.cluster}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RedisTarget:
        return cls(url=data["url"], cluster=[(host, int(port)) for host, port in data["cluster"]])

    def settings(self) -> dict[str, object]:
        """The settings that point the app at it."""
        return {"redis_url": self.url, "redis_cluster": self.cluster}


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


@dataclass
class ClusterGroup:
    """A Redis Cluster of three masters, each with ``replicas`` replicas, created with
    ``redis-cli --cluster create``."""

    root: Path
    replicas: int = 0
    #: a node is failed over after this long without an answer (only with replicas)
    node_timeout_ms: int = 5000
    servers: list[RedisProcess] = field(default_factory=list)

    def start(self) -> ClusterGroup:
        require_redis_server()
        if REDIS_CLI is None:
            pytest.skip("needs redis-cli (or valkey-cli) on PATH to create a cluster")
        try:
            for n in range(3 * (1 + self.replicas)):
                self.servers.append(RedisProcess(self.root / f"node{n}").start(
                    "cluster-enabled yes", "cluster-config-file nodes.conf",
                    f"cluster-node-timeout {self.node_timeout_ms}",
                    # the bus port is not the default +10000: a free port may be above 55535
                    f"cluster-port {free_port()}",
                ))
            created = subprocess.run(
                [REDIS_CLI, "--cluster", "create", *(f"127.0.0.1:{port}" for _, port in self.nodes),
                 "--cluster-replicas", str(self.replicas), "--cluster-yes"],
                capture_output=True, text=True, timeout=30, check=False,
            )
            if created.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout[-2000:]}"
                                   f"{created.stderr[-2000:]}")
            self.wait_ok()
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def nodes(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", s.port) for s in self.servers]

    def _alive(self) -> list[RedisProcess]:
        return [s for s in self.servers if s.proc is not None and s.proc.poll() is None]

    def _ok(self, server: RedisProcess, known: int) -> bool:
        info = str(server.client().execute_command("CLUSTER", "INFO"))
        return "cluster_state:ok" in info and f"cluster_known_nodes:{known}" in info

    def wait_ok(self, seconds: float = 30) -> None:
        """Every live node says the cluster is ok (after a failover: with the new master)."""
        known = len(self.servers)
        SentinelGroup._wait(lambda: all(self._ok(s, known) for s in self._alive()),
                            "cluster_state:ok", seconds)

    def master_of(self, slot: int) -> RedisProcess:
        """The server that holds ``slot`` now."""
        for start, end, master, *_ in self._alive()[0].client().execute_command("CLUSTER", "SLOTS"):
            if int(start) <= slot <= int(end):
                port = int(master[1])
                return next(s for s in self.servers if s.port == port)
        raise LookupError(f"no node holds slot {slot}")

    def stop(self) -> None:
        for server in self.servers:
            server.kill()
