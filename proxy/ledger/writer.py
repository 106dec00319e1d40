"""The background writers that copy usage records into PostgreSQL, off the request path.

- :class:`StreamWriter` (Redis store): every replica reads the tenants' ledger streams through one
  consumer group, inserts a batch, and acknowledges it only once the INSERT committed. A replica that dies
  holding entries leaves them pending; another claims them after ``RECLAIM_IDLE``. PostgreSQL away: the
  batch is retried with backoff and nothing more is read; Redis keeps the records meanwhile (up to
  ``store.ledger_stream_records`` per tenant).
- :class:`QueueWriter` (memory store): the store hands each record to an in-process queue; batches that
  PostgreSQL cannot take go to a local journal (:mod:`proxy.ledger.journal`), replayed first once it
  answers again. The queue holds at most ``QUEUE_LIMIT`` records; past it, and with the journal full, the
  oldest records are dropped from the queue (counted and logged: they remain only in the memory store's
  own ledger).

Either way a record may be inserted twice (a crash between INSERT and XACK, a replayed journal): the
table's unique key makes the second INSERT a no-op, so the table holds each request once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections import deque
from collections.abc import Sequence

from proxy.ledger.journal import LedgerJournal
from proxy.ledger.postgres import LedgerUnavailable, PostgresLedger, backoff
from proxy.store.base import StoreUnavailable
from proxy.store.records import UsageRecord
from proxy.store.redis_ledger import LedgerGroup, StreamEntry

log = logging.getLogger("efflux.ledger")

GROUP = "postgres"
BATCH = 500  # records per INSERT (per stream for the stream writer)
IDLE_WAIT = 0.2  # seconds between reads when nothing is waiting
RECLAIM_IDLE = 30.0  # seconds an entry stays pending with a consumer before another claims it
RECLAIM_EVERY = 5.0  # seconds between claims of stale pending entries
MAINTAIN_EVERY = 3600.0  # seconds between partition creation and retention runs
MAINTAIN_RETRY = 60.0  # seconds after a failed run
QUEUE_LIMIT = 100_000


class Writer:
    """What both writers report: ``lag`` (seconds since the oldest record not yet stored was settled,
    0 when caught up) and ``backlog`` (records waiting), read by /metrics."""

    def __init__(self, ledger: PostgresLedger) -> None:
        self.ledger = ledger
        self.lag = 0.0
        self.backlog = 0
        self.written = 0
        self.dropped = 0
        self._maintained = 0.0

    async def run(self) -> None:
        """Copy records until cancelled."""
        raise NotImplementedError

    async def store(self, records: Sequence[UsageRecord]) -> None:
        """Insert until PostgreSQL takes it (backoff between tries, reconnecting through the pool)."""
        attempt = 0
        while True:
            try:
                await self.ledger.write(records)
                self.written += len(records)
                return
            except Exception as exc:  # unavailable, or a statement refused (schema missing...): retried
                self._waiting(records)
                if attempt == 0:
                    log.warning("ledger write failed, retrying", extra={"fields": {"error": repr(exc)}})
                await backoff(attempt)
                attempt += 1

    async def maintain(self) -> None:
        """Partitions ahead and retention, once an hour (each replica; both are idempotent)."""
        if time.monotonic() - self._maintained < MAINTAIN_EVERY and self._maintained:
            return
        try:
            await self.ledger.prepare()
            await self.ledger.retain()
            self._maintained = time.monotonic()
        except Exception as exc:  # retried in a minute
            self._maintained = time.monotonic() - MAINTAIN_EVERY + MAINTAIN_RETRY
            log.warning("ledger maintenance failed", extra={"fields": {"error": repr(exc)}})

    def _waiting(self, records: Sequence[UsageRecord]) -> None:
        if records:
            self.lag = max(0.0, time.time() - min(r.started_at for r in records))


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class StreamWriter(Writer):
    def __init__(self, ledger: PostgresLedger, group: LedgerGroup) -> None:
        super().__init__(ledger)
        self.group = group
        self.consumer = consumer_name()
        self.reclaim_idle = RECLAIM_IDLE
        self.reclaim_every = RECLAIM_EVERY

    async def run(self) -> None:
        reclaimed = 0.0
        attempt = 0
        while True:
            await self.maintain()
            reclaim = time.monotonic() - reclaimed > self.reclaim_every
            try:
                entries = await self.group.read(
                    GROUP, self.consumer, BATCH, reclaim_idle=self.reclaim_idle if reclaim else None
                )
                if reclaim:
                    reclaimed = time.monotonic()
                    self.backlog = await self.group.backlog(GROUP)
            except StoreUnavailable:
                await backoff(attempt)
                attempt += 1
                continue
            except Exception:  # an unreadable entry: logged, left pending (the rest goes on)
                log.exception("ledger stream read failed")
                await backoff(attempt)
                attempt += 1
                continue
            attempt = 0
            if not entries:
                self.lag = 0.0
                await asyncio.sleep(IDLE_WAIT)
                continue
            await self.flush(entries)

    async def flush(self, entries: list[StreamEntry]) -> None:
        """Store the entries' records, then acknowledge them (a lost ack: reclaimed, stored again: no-op)."""
        unique = {e.record.request_id: e.record for e in entries}
        records = list(unique.values())
        for first in range(0, len(records), BATCH):
            await self.store(records[first : first + BATCH])
        self._waiting(records)
        with contextlib.suppress(StoreUnavailable):  # else pending until reclaimed, stored again: no-op
            await self.group.ack(GROUP, entries)


class QueueWriter(Writer):
    def __init__(self, ledger: PostgresLedger, journal: LedgerJournal) -> None:
        super().__init__(ledger)
        self.journal = journal
        self.queue: deque[UsageRecord] = deque()
        self._ready = asyncio.Event()

    def put(self, record: UsageRecord) -> None:
        """Called by the memory store as it settles (synchronous: no await on the request path)."""
        if len(self.queue) >= QUEUE_LIMIT:
            self.queue.popleft()
            self._dropped(1)
        self.queue.append(record)
        if len(self.queue) >= BATCH:
            self._ready.set()

    async def run(self) -> None:
        attempt = 0
        try:
            await self.journal.load()
            while True:
                await self.maintain()
                self._measure()
                try:
                    if not self.journal.empty:
                        await self.ledger.ping()  # before reading a journal back, as often as we retry
                        await self.replay()
                    await self._wait()
                    batch = self._take()
                    if batch:
                        try:
                            await self.ledger.write(batch)
                        except Exception as exc:
                            await self._spill(batch)
                            raise LedgerUnavailable(repr(exc)) from exc
                        self.written += len(batch)
                    attempt = 0
                except LedgerUnavailable as exc:
                    if attempt == 0:
                        log.warning("ledger write failed, journaling", extra={"fields": {"error": str(exc)}})
                    await self._spill(self._take(len(self.queue)))
                    await backoff(attempt)
                    attempt += 1
                except Exception:  # an unreadable journal, say: logged, retried
                    log.exception("ledger writer failed")
                    await backoff(attempt)
                    attempt += 1
        finally:
            self._spill_now()

    def _measure(self) -> None:
        """Backlog: records queued and journaled; lag: the age of the oldest of them (0: none)."""
        self.backlog = len(self.queue) + self.journal.count
        oldest = [t for t in (self.journal.oldest, self.queue[0].started_at if self.queue else None) if t]
        self.lag = max(0.0, time.time() - min(oldest)) if oldest else 0.0

    async def replay(self) -> None:
        """Insert the journal's records, then empty it (raises :class:`LedgerUnavailable` on the way)."""
        records = await self.journal.read()
        for first in range(0, len(records), BATCH):
            try:
                await self.ledger.write(records[first : first + BATCH])
            except Exception as exc:
                raise LedgerUnavailable(repr(exc)) from exc
        self.written += len(records)
        await self.journal.clear()
        log.info("ledger journal replayed", extra={"fields": {"records": len(records)}})

    async def _wait(self) -> None:
        if len(self.queue) < BATCH:
            self._ready.clear()
            try:
                async with asyncio.timeout(IDLE_WAIT):
                    await self._ready.wait()
            except TimeoutError:
                pass

    def _take(self, count: int = BATCH) -> list[UsageRecord]:
        return [self.queue.popleft() for _ in range(min(count, len(self.queue)))]

    async def _spill(self, records: list[UsageRecord]) -> None:
        if records:
            kept = await self.journal.append(records)
            if kept < len(records):
                self._dropped(len(records) - kept)

    def _spill_now(self) -> None:
        """At shutdown: what is still queued goes to the journal, for the next start to replay."""
        records = self._take(len(self.queue))
        if records:
            kept = self.journal.append_now(records)
            if kept < len(records):
                self._dropped(len(records) - kept)

    def _dropped(self, count: int) -> None:
        self.dropped += count
        log.error(
            "ledger queue and journal full: records dropped from the PostgreSQL copy",
            extra={"fields": {"dropped": count, "dropped_total": self.dropped}},
        )
