"""Shared fixtures (helpers are in ``support``), and the markers every test gets from where it lives and
what it uses.

Two ways to run a gateway in a test:
- in process (``gateway``/``make_gateway``): ``create_app`` served by pytest-aiohttp's test server, the
  fake provider on the same loop; the test can look at the store directly.
- as a real process (``gateway_process``): ``python -m proxy serve`` with a config file, the fake provider
  in a background thread (``threaded_fake``), so that clients such as the official ``openai`` package talk
  to it over TCP.

Redis is always a private ``redis-server`` started here, never a shared one: ``redis_server`` (one for the
session, each test under a fresh key prefix), ``redis_cluster`` (a 3-master cluster for the session), and
``private_redis``/``spawn_redis`` for a test that freezes, kills or dumps its own server. A missing
``redis-server`` makes these fixtures fail, not skip: CI must run the Redis-backed tests.

Markers (registered in pyproject, applied in ``pytest_collection_modifyitems``):
- ``ui``: tests/ui (a browser);
- ``e2e``: tests/e2e, tests/resilience (whole-gateway fault scenarios that wait on real timeouts), a module
  that starts gateway processes, or a test marked by hand (the CLI or pytest run as a process);
- ``redis``: marked by hand, or using one of the Redis fixtures above;
- ``unit``: everything else: no redis-server, no browser, no gateway process (``scripts/test -m unit``).
When JUnit XML is written, the node ids of the ``redis`` tests go to ``redis-tests.txt`` beside it, so
that ``.ci/run`` can check that each of them ran and passed.
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from support import base_config

from proxy.app import create_app
from proxy.config import parse_settings
from proxy.testing.fake_provider import FakeProvider, ThreadedFakeProvider
from proxy.testing.gateway_process import GatewayProcess
from proxy.testing.redis_server import RedisClusterServers, RedisServer, start_redis, start_redis_cluster

TESTS = Path(__file__).parent
REDIS_FIXTURES = frozenset(
    {"redis_server", "redis_url", "redis_cluster", "redis_cluster_url", "spawn_redis", "private_redis"}
)
REDIS_TESTS_FILE = "redis-tests.txt"


# -- markers --------------------------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    redis_tests: list[str] = []
    for item in items:
        folder = item.path.relative_to(TESTS).parts[0] if item.path.is_relative_to(TESTS) else ""
        if folder == "ui":
            item.add_marker(pytest.mark.ui)
        if folder in ("e2e", "resilience") or _starts_gateway_processes(item):
            item.add_marker(pytest.mark.e2e)
        if REDIS_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.redis)
        kinds = {mark.name for mark in item.iter_markers()} & {"ui", "e2e", "redis"}
        if not kinds:
            item.add_marker(pytest.mark.unit)
        if "redis" in kinds:
            redis_tests.append(item.nodeid)
    junit = config.getoption("xmlpath", None)
    if junit:
        listing = Path(junit).parent / REDIS_TESTS_FILE
        listing.parent.mkdir(parents=True, exist_ok=True)
        listing.write_text("".join(f"{nodeid}\n" for nodeid in redis_tests), encoding="utf-8")


def _starts_gateway_processes(item: pytest.Item) -> bool:
    """Whether the test uses the ``gateway_process`` fixture or its module imports ``GatewayProcess``."""
    if "gateway_process" in getattr(item, "fixturenames", ()):
        return True
    module = getattr(item, "module", None)
    return module is not None and any(value is GatewayProcess for value in vars(module).values())


# -- a gateway in process, on a fake provider on the same loop -----------------------------------------


@pytest.fixture
async def fake() -> AsyncIterator[FakeProvider]:
    provider = await FakeProvider().start()
    try:
        yield provider
    finally:
        await provider.stop()


@pytest.fixture
async def make_gateway(aiohttp_client: Any, fake: FakeProvider) -> AsyncIterator[Callable[..., Any]]:
    """Build an in-process gateway: ``client = await make_gateway(**config_sections)``."""

    async def build(config: dict[str, Any] | None = None, **sections: Any) -> TestClient[Any, Any]:
        cfg = copy.deepcopy(config) if config is not None else base_config(fake.url, **sections)
        app = create_app(parse_settings(cfg))
        client: TestClient[Any, Any] = await aiohttp_client(app)
        return client

    yield build


@pytest.fixture
async def gateway(make_gateway: Callable[..., Any]) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = await make_gateway()
    return client


# -- gateways as real processes, on a fake provider in a thread ----------------------------------------


@pytest.fixture(scope="module")
def threaded_fake() -> Iterator[ThreadedFakeProvider]:
    """A fake provider serving from its own thread, for the module's gateway processes."""
    provider = ThreadedFakeProvider().start_in_thread()
    yield provider
    provider.stop_thread()


@pytest.fixture(scope="module")
def gateway_process() -> Iterator[Callable[..., GatewayProcess]]:
    """Start a gateway process and wait until it is healthy: ``gw = gateway_process(config, env=...)``
    (the keywords of :class:`GatewayProcess`). Every process started is stopped when the module ends."""
    with ExitStack() as processes:

        def start(config: dict[str, Any], **options: Any) -> GatewayProcess:
            return processes.enter_context(GatewayProcess(config, **options))

        yield start


# -- Redis: private servers only ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One private redis-server for the session: each test keeps to a fresh key prefix."""
    server = start_redis()
    yield server
    server.stop()
    shutil.rmtree(server.directory, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterServers]:
    """A private 3-master Redis Cluster for the session."""
    cluster = start_redis_cluster(3)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def redis_cluster_url(redis_cluster: RedisClusterServers) -> str:
    return redis_cluster.url


@pytest.fixture
def spawn_redis() -> Iterator[Callable[..., RedisServer]]:
    """Start redis-servers of the test's own: ``spawn_redis(*extra_args)``; stopped after the test."""
    started: list[RedisServer] = []

    def spawn(*args: str) -> RedisServer:
        server = start_redis(*args)
        started.append(server)
        return server

    yield spawn
    for server in started:
        server.stop()
        shutil.rmtree(server.directory, ignore_errors=True)


@pytest.fixture
def private_redis(spawn_redis: Callable[..., RedisServer]) -> RedisServer:
    """A redis-server of the test's own, for a test that freezes, kills or dumps it."""
    server: RedisServer = spawn_redis()
    return server
