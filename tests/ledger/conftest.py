"""A database of the test's own on the machine's PostgreSQL (127.0.0.1:5432, trust auth, user postgres),
dropped afterwards; ``PGHOST_URL`` names another server."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from proxy.testing.postgres_server import PostgresServer, cleanup, spawn_postgres

SERVER = os.environ.get("PGHOST_URL", "postgresql://postgres@127.0.0.1:5432")


@pytest.fixture
async def database_url() -> AsyncIterator[str]:
    name = f"efflux_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(f"{SERVER}/postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield f"{SERVER}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
def private_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of the test's own (it gets crashed and restarted): never the machine's."""
    server = spawn_postgres()
    try:
        yield server
    finally:
        cleanup(server)
