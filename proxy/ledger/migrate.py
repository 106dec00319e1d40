"""Versioned schema migrations: ``migrations/NNNN_name.sql``, applied in order, each once.

``schema_migrations`` records the versions applied. Each migration runs in its own transaction with its
row in ``schema_migrations``, all under an advisory lock, so replicas starting together apply it once. A new
column of the usage record is a new file (``ALTER TABLE usage_records ADD COLUMN ...``), never an edit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncpg

MIGRATIONS = Path(__file__).parent / "migrations"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_LOCK = 0x6566666C7578  # pg_advisory_lock key: "efflux"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """The package's migrations, in version order."""
    found = []
    for path in sorted(MIGRATIONS.iterdir()):
        match = _NAME.match(path.name)
        if match:
            found.append(Migration(int(match[1]), path.stem, path.read_text(encoding="utf-8")))
    return found


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply the migrations ``conn``'s database lacks; returns the names applied (none: up to date)."""
    # One migrating session at a time (replicas starting together), the bookkeeping table included.
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in await conn.fetch("SELECT version FROM schema_migrations")}
        applied: list[str] = []
        for migration in migrations():
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
            applied.append(migration.name)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK)


async def pending(conn: asyncpg.Connection) -> list[str]:
    """The migrations not applied yet (the table missing: all of them)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    done: set[int] = set()
    if exists:
        done = {row[0] for row in await conn.fetch("SELECT version FROM schema_migrations")}
    return [m.name for m in migrations() if m.version not in done]
