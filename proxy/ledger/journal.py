"""The memory store's records waiting for PostgreSQL: a local file of JSON lines, bounded in bytes.

Written and read in a worker thread (never on the event loop), by the writer task alone. When a batch
would take the file past ``limit`` bytes it is refused: the caller counts those records as dropped (they
remain in the memory store's own ledger until it rotates them out).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path

from proxy.store.records import UsageRecord


class LedgerJournal:
    def __init__(self, path: str | os.PathLike[str], limit: int) -> None:
        self.path = Path(path)
        self.limit = limit
        self.size = self.path.stat().st_size if self.path.exists() else 0

    @property
    def empty(self) -> bool:
        return self.size == 0

    async def append(self, records: Sequence[UsageRecord]) -> bool:
        """Add ``records`` (synced to disk); False, writing nothing, when they would pass the limit."""
        data = b"".join(r.to_json() + b"\n" for r in records)
        if self.size + len(data) > self.limit:
            return False
        await asyncio.to_thread(self._write, data)
        self.size += len(data)
        return True

    async def read(self) -> list[UsageRecord]:
        raw = await asyncio.to_thread(self._read)
        return [UsageRecord.from_json(line) for line in raw.splitlines() if line.strip()]

    async def clear(self) -> None:
        await asyncio.to_thread(self.path.unlink, missing_ok=True)
        self.size = 0

    def append_now(self, records: Sequence[UsageRecord]) -> bool:
        """``append`` for shutdown, when the loop is closing: blocking, once."""
        data = b"".join(r.to_json() + b"\n" for r in records)
        if self.size + len(data) > self.limit:
            return False
        self._write(data)
        self.size += len(data)
        return True

    def _write(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())

    def _read(self) -> bytes:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return b""
