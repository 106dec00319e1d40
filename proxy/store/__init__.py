"""Shared state behind one interface (see :mod:`proxy.store.base`), and ``open_store``: the store the
config names."""

from __future__ import annotations

from proxy.config import Settings
from proxy.store.base import Store, StoreUnavailable
from proxy.store.journal import Journal, JournaledStore

__all__ = ["Store", "StoreUnavailable", "open_store"]


def open_store(settings: Settings) -> Store:
    if settings.store.backend == "redis":
        from proxy.store.redis import RedisStore

        assert settings.store.url is not None
        redis_store = RedisStore(
            settings.store.url,
            timeout=settings.store.timeout,
            cluster=settings.store.cluster,
            prefix=settings.store.prefix,
            max_records=settings.store.ledger_stream_records,
        )
        # Settlements Redis cannot take during an outage are journaled locally and replayed later.
        return JournaledStore(redis_store, Journal(settings.store.journal), budget=settings.store.timeout)
    from proxy.store.memory import MemoryStore

    return MemoryStore(max_records=settings.store.memory_ledger_records)
