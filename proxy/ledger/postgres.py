"""The ledger's PostgreSQL database: a small connection pool, batch inserts, monthly partitions, retention.

asyncpg is imported lazily (``driver()``): the base install works without it, and a config asking for the
PostgreSQL ledger without the driver is refused with a message that names the extra to install.

Every driver or network failure becomes :class:`LedgerUnavailable` here; readers translate it at the edge
(503), the writer retries.
"""

from __future__ import annotations

import asyncio
import datetime
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from types import ModuleType
from typing import TYPE_CHECKING

from proxy.config import ConfigError
from proxy.ledger.migrate import migrate
from proxy.ledger.rows import UTC, Layout
from proxy.store.records import UsageRecord

if TYPE_CHECKING:
    import asyncpg

AHEAD = 2  # months of partitions created beyond the current one
TIMEOUT = 30.0  # seconds: one statement (a report over months of records included)
_PARTITION = re.compile(r"^usage_records_y(\d{4})m(\d{2})$")
_LOCK = 0x6566666C7579  # pg_advisory_xact_lock key: partition maintenance


class LedgerUnavailable(Exception):
    """PostgreSQL did not answer or refused the statement (a connection lost, a restart, a timeout)."""


def driver() -> ModuleType:
    try:
        import asyncpg
    except ImportError:
        raise ConfigError(
            "ledger.backend: postgres needs the asyncpg driver: pip install 'efflux-gateway[postgres]'"
        ) from None
    module: ModuleType = asyncpg
    return module


def unavailable() -> tuple[type[BaseException], ...]:
    """The failures that mean "PostgreSQL is not there now" (retried), not "this statement is wrong"."""
    asyncpg = driver()
    return (
        OSError,
        TimeoutError,
        asyncpg.InterfaceError,
        asyncpg.PostgresConnectionError,
        asyncpg.exceptions.OperatorInterventionError,
        asyncpg.exceptions.InsufficientResourcesError,
    )


def month_start(moment: datetime.datetime, offset: int = 0) -> datetime.datetime:
    index = moment.year * 12 + moment.month - 1 + offset
    return datetime.datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


class PostgresLedger:
    """The ``usage_records`` table of one database. No I/O in the constructor: ``open()`` connects."""

    def __init__(self, url: str, retention: float, *, pool_size: int = 4) -> None:
        self.url = url
        self.retention = retention
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._layout: Layout | None = None
        self._months: set[datetime.datetime] = set()

    async def open(self, *, migrate_schema: bool = False) -> None:
        """Connect (raises :class:`LedgerUnavailable`), apply the migrations when asked, read the columns."""
        asyncpg = driver()
        try:
            self._pool = await asyncpg.create_pool(
                self.url, min_size=0, max_size=self._pool_size, command_timeout=TIMEOUT
            )
            if migrate_schema:
                async with self._pool.acquire() as conn:
                    await migrate(conn)
        except unavailable() as exc:
            raise LedgerUnavailable(f"postgres: {exc!r}") from exc

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """One pooled connection; driver and network failures become :class:`LedgerUnavailable`."""
        if self._pool is None:
            raise LedgerUnavailable("the ledger is not open")
        try:
            async with self._pool.acquire(timeout=TIMEOUT) as conn:
                yield conn
        except unavailable() as exc:
            raise LedgerUnavailable(f"postgres: {exc!r}") from exc

    async def ping(self) -> None:
        async with self.connection() as conn:
            await conn.fetchval("SELECT 1")

    async def layout(self) -> Layout:
        """The table's columns, read once (a migration adding one takes effect at the next start)."""
        if self._layout is None:
            async with self.connection() as conn:
                rows = await conn.fetch(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_name = 'usage_records' AND table_schema = current_schema()"
                )
            if not rows:
                raise LedgerUnavailable(
                    "the table usage_records does not exist: run efflux-gateway migrate --config F "
                    "(or set ledger.migrate_on_start)"
                )
            self._layout = Layout(r[0] for r in rows)
        return self._layout

    async def write(self, records: Sequence[UsageRecord]) -> None:
        """Insert a batch in one statement; rows already there (same request id) are left as they are."""
        if not records:
            return
        layout = await self.layout()
        months = {month_start(datetime.datetime.fromtimestamp(r.started_at, UTC)) for r in records}
        if not months <= self._months:
            await self.prepare(months)
        async with self.connection() as conn:
            await conn.execute(layout.insert_sql(), *layout.arrays(records))

    async def prepare(self, months: set[datetime.datetime] | None = None) -> None:
        """Create the month partitions for ``months`` (default: this month and ``AHEAD`` more). A month
        whose records already sit in the default partition keeps them there (queries read both)."""
        await self.layout()  # no table yet: LedgerUnavailable (it waits for the migration)
        now = datetime.datetime.now(UTC)
        wanted = months or {month_start(now, i) for i in range(AHEAD + 1)}
        cutoff = now - datetime.timedelta(seconds=self.retention)
        async with self.connection() as conn:
            for start in sorted(wanted - self._months):
                end = month_start(start, 1)
                if end <= cutoff:
                    self._months.add(start)  # past retention: its rows go to the default partition
                    continue
                name = f"usage_records_y{start.year:04d}m{start.month:02d}"
                try:
                    async with conn.transaction():
                        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
                        await conn.execute(
                            f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF usage_records "
                            f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
                        )
                except driver().CheckViolationError:
                    pass  # the default partition holds rows of that month: they stay there
                self._months.add(start)

    async def retain(self) -> int:
        """Drop the month partitions wholly older than the retention, and delete older rows from the
        default partition; returns the partitions dropped."""
        await self.layout()
        cutoff = datetime.datetime.now(UTC) - datetime.timedelta(seconds=self.retention)
        dropped = 0
        async with self.connection() as conn:
            rows = await conn.fetch(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'usage_records'::regclass"
            )
            for (name,) in rows:
                match = _PARTITION.match(name)
                if (
                    match
                    and month_start(datetime.datetime(int(match[1]), int(match[2]), 1, tzinfo=UTC), 1)
                    <= cutoff
                ):
                    await conn.execute(f"DROP TABLE IF EXISTS {name}")
                    dropped += 1
            await conn.execute("DELETE FROM usage_records_default WHERE started_at < $1", cutoff)
        self._months = {m for m in self._months if month_start(m, 1) > cutoff}
        return dropped


async def backoff(attempt: int, cap: float = 5.0) -> None:
    """Sleep 0.1 s, 0.2 s, 0.4 s... up to ``cap`` between retries of a failed write."""
    await asyncio.sleep(min(cap, 0.1 * 2 ** min(attempt, 10)))
