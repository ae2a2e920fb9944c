"""Routing fixtures: a RouterStore on the flushed test Redis with the default policy; every
test that uses Redis runs on a plain server and again on a Redis Cluster (the router's keys
share one hash tag, so each script and transaction is served by one node)."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from routing.policy import Policy, load_policy
from routing.store import RouterStore


@pytest.fixture(params=[False, True], ids=["redis", "cluster"])
def on_cluster(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
def policy() -> Policy:
    return load_policy()


@pytest.fixture
def store(redis_client: aioredis.Redis, policy: Policy) -> RouterStore:
    return RouterStore(redis_client, policy)
