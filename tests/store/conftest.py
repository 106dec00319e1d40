"""Fixtures of the store suite: one store per backend, on the session's private Redis servers (the Redis
fixtures are in tests/conftest.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from proxy.store.base import Store
from proxy.store.memory import MemoryStore
from proxy.store.redis import RedisStore
from proxy.testing.redis_server import RedisServer


def redis_store(request: pytest.FixtureRequest, backend: str) -> RedisStore:
    """A store on the session's single server or cluster; a fresh prefix per test is its clean state."""
    cluster = backend == "cluster"
    url = request.getfixturevalue("redis_cluster_url" if cluster else "redis_url")
    prefix = f"egwtest-{uuid.uuid4().hex[:12]}"
    return RedisStore(url, cluster=cluster, timeout=2.0, prefix=prefix)


REDIS_BACKENDS = [
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("cluster", marks=pytest.mark.redis),
]


@pytest.fixture(params=[pytest.param("memory"), *REDIS_BACKENDS])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    """Every backend, each test starting from an empty store."""
    if request.param == "memory":
        yield MemoryStore()
        return
    backend = redis_store(request, request.param)
    yield backend
    await backend.close()


@pytest.fixture(params=REDIS_BACKENDS)
async def redis_backend(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[RedisStore, list[RedisServer]]]:
    """A Redis store and the server processes holding its keys (for inspecting what it wrote)."""
    backend = redis_store(request, request.param)
    if request.param == "cluster":
        nodes = request.getfixturevalue("redis_cluster").nodes
    else:
        nodes = [request.getfixturevalue("redis_server")]
    yield backend, nodes
    await backend.close()
