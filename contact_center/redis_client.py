"""The Redis client of every part of the process (the app, the CLIs): one URL, Sentinel, or a
Redis Cluster.

With ``CC_REDIS_SENTINELS`` the client asks the sentinels for the primary of
``CC_REDIS_SENTINEL_SERVICE`` and asks again whenever its connection fails or the server it
reaches answers that it is now a replica (``READONLY``), so a failover costs the requests in
flight at that moment, not a restart. ``health_check_interval`` pings a connection that was
idle for 30 s before using it, so one left half-open by a dead primary is noticed.

With ``CC_REDIS_CLUSTER`` the client learns the slots from the nodes given and follows them
when they move (``MOVED``/``ASK``). The app is cluster-safe: every script, transaction and
multi-stream read names keys of one hash slot (``redis_keys``, ``routing.keys``); pub/sub uses
plain ``PUBLISH``, which a cluster delivers to the subscribers of every node.
"""

from __future__ import annotations

from typing import cast

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.sentinel import Sentinel

from contact_center.config import Settings

HEALTH_CHECK_S = 30
#: Connections a process opens to Redis at most. redis-py 8's default pool refuses a command
#: ("Too many connections") past 100 in use, which a burst of sockets opening reaches; the
#: blocking pool makes such a command wait for a free connection instead (back-pressure),
#: up to ``POOL_WAIT_S``.
MAX_CONNECTIONS = 512
POOL_WAIT_S = 10.0
#: how long a sentinel may take to answer who the primary is
SENTINEL_TIMEOUT_S = 1.0


def connect(settings: Settings, url: str | None = None) -> aioredis.Redis:
    """A client of the configured Redis (``url`` when given: the embedded Valkey's)."""
    if settings.redis_cluster and url is None:
        return cluster_client(settings.redis_cluster)
    if settings.redis_sentinels and url is None:
        sentinel = Sentinel(
            settings.redis_sentinels,
            sentinel_kwargs={"socket_timeout": SENTINEL_TIMEOUT_S},
            decode_responses=True,
        )
        return sentinel.master_for(
            settings.redis_sentinel_service,
            decode_responses=True,
            health_check_interval=HEALTH_CHECK_S,
            max_connections=MAX_CONNECTIONS,
        )
    target = url or settings.redis_url
    if target is None:
        raise ValueError("no Redis configured (CC_REDIS_URL, CC_REDIS_SENTINELS or CC_REDIS_CLUSTER)")
    pool = aioredis.BlockingConnectionPool.from_url(
        target,
        decode_responses=True,
        health_check_interval=HEALTH_CHECK_S,
        max_connections=MAX_CONNECTIONS,
        timeout=POOL_WAIT_S,
    )
    return aioredis.Redis(connection_pool=pool, auto_close_connection_pool=True)


def cluster_client(nodes: list[tuple[str, int]]) -> aioredis.Redis:
    """A client of the Redis Cluster that ``nodes`` (some of its nodes) belong to.

    Typed as ``Redis``: ``RedisCluster`` is no subclass of it but takes every command the app
    sends with the same arguments, and one annotation then covers every way Redis is run.
    What differs (``PUBLISH`` cannot be pipelined) is asked with :func:`is_cluster`.

    Send one command (``ping``) before sharing it between tasks: redis-py 8.1 learns the slots
    on the first command, and first commands sent concurrently fail (a connection used before
    it is open).
    """
    client = RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in nodes],
        decode_responses=True,
        health_check_interval=HEALTH_CHECK_S,
    )
    return cast(aioredis.Redis, client)


def is_cluster(client: object) -> bool:
    return isinstance(client, RedisCluster)


def describe(settings: Settings) -> str:
    """Where Redis is, for logs (no password)."""
    if settings.redis_cluster:
        return "cluster://" + ",".join(f"{host}:{port}" for host, port in settings.redis_cluster)
    if settings.redis_sentinels:
        hosts = ",".join(f"{host}:{port}" for host, port in settings.redis_sentinels)
        return f"sentinel://{hosts}/{settings.redis_sentinel_service}"
    return settings.redis_url or "embedded"
