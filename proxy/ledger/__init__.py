"""The durable ledger in PostgreSQL (``ledger: {backend: postgres, url, retention}``).

The store stays the request path's ledger (settlement appends the record there, in the same step as the
money); a background writer copies every record into ``usage_records`` exactly once
(:mod:`.writer`). Reports, the records API, the dashboard and export then read PostgreSQL
(:mod:`.reports`, :mod:`.export`). The schema is the package's migrations (:mod:`.migrate`).

    postgres.py   the pool, batch INSERT ... ON CONFLICT DO NOTHING, month partitions, retention
    rows.py       a usage record as a row (and a field without a column yet kept in ``extra``)
    writer.py     StreamWriter (Redis consumer group) and QueueWriter (memory store, local journal)
    journal.py    the QueueWriter's bounded local journal
    reports.py    /admin/usage, the dashboard and /admin/usage/records as SQL
    export.py     CSV / JSON lines, streamed from a server-side cursor (or from the store)
"""

from __future__ import annotations

from proxy.config import ConfigError, Settings
from proxy.ledger.journal import LedgerJournal
from proxy.ledger.postgres import LedgerUnavailable, PostgresLedger
from proxy.ledger.writer import QueueWriter, StreamWriter, Writer
from proxy.store.base import Store

__all__ = ["LedgerUnavailable", "PostgresLedger", "Writer", "open_ledger", "writer_for"]


def open_ledger(settings: Settings) -> PostgresLedger | None:
    """The configured ledger database, not connected yet (None: no ``ledger:`` section)."""
    config = settings.ledger
    if config is None:
        return None
    return PostgresLedger(config.url, config.retention)


def writer_for(ledger: PostgresLedger, settings: Settings, store: Store) -> Writer:
    """The writer that feeds ``ledger`` from ``store``: the Redis streams' consumer group, or the memory
    store's records through an in-process queue and a local journal."""
    from proxy.store.journal import JournaledStore
    from proxy.store.memory import MemoryStore
    from proxy.store.redis import RedisStore

    assert settings.ledger is not None
    inner = store.store if isinstance(store, JournaledStore) else store
    if isinstance(inner, RedisStore):
        return StreamWriter(ledger, inner.ledger_group())
    if isinstance(inner, MemoryStore):
        journal = LedgerJournal(f"{settings.ledger.journal}.jsonl", settings.ledger.journal_bytes)
        writer = QueueWriter(ledger, journal)
        inner.on_record = writer.put
        return writer
    raise ConfigError(f"ledger: no writer for a store of type {type(inner).__name__}")
