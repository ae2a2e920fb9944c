"""Routing fixtures: a RouterStore on the flushed test Redis with the default policy."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from routing.policy import Policy, load_policy
from routing.store import RouterStore


@pytest.fixture
def policy() -> Policy:
    return load_policy()


@pytest.fixture
def store(redis_client: aioredis.Redis, policy: Policy) -> RouterStore:
    return RouterStore(redis_client, policy)
