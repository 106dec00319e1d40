"""The memory store's records waiting for PostgreSQL: a local file of JSON lines, bounded in bytes.

Written and read in a worker thread (never on the event loop), by the writer task alone. Records that
would take the file past ``limit`` bytes are refused: the caller counts them as dropped (they
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
        # What the file holds, for the writer's backlog and lag: counted as records are appended, and
        # read once from a file left by an earlier process (``load``).
        self.count = 0
        self.oldest: float | None = None

    async def load(self) -> None:
        """Count the records of a journal left by an earlier process."""
        if self.size:
            records = await self.read()
            self.count = len(records)
            self.oldest = min((r.started_at for r in records), default=None)

    @property
    def empty(self) -> bool:
        return self.size == 0

    async def append(self, records: Sequence[UsageRecord]) -> int:
        """Add ``records`` (synced to disk), as many as fit under the limit; returns how many."""
        data, count = self._fitting(records)
        if data:
            await asyncio.to_thread(self._write, data)
            self._added(data, records[:count])
        return count

    async def read(self) -> list[UsageRecord]:
        raw = await asyncio.to_thread(self._read)
        return [UsageRecord.from_json(line) for line in raw.splitlines() if line.strip()]

    async def clear(self) -> None:
        await asyncio.to_thread(self.path.unlink, missing_ok=True)
        self.size, self.count, self.oldest = 0, 0, None

    def append_now(self, records: Sequence[UsageRecord]) -> int:
        """``append`` for shutdown, when the loop is closing: blocking, once."""
        data, count = self._fitting(records)
        if data:
            self._write(data)
            self._added(data, records[:count])
        return count

    def _added(self, data: bytes, records: Sequence[UsageRecord]) -> None:
        self.size += len(data)
        self.count += len(records)
        first = min(r.started_at for r in records)
        self.oldest = first if self.oldest is None else min(self.oldest, first)

    def _fitting(self, records: Sequence[UsageRecord]) -> tuple[bytes, int]:
        lines: list[bytes] = []
        room = self.limit - self.size
        for record in records:
            line = record.to_json() + b"\n"
            if len(line) > room:
                break
            lines.append(line)
            room -= len(line)
        return b"".join(lines), len(lines)

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
