"""Reading the Redis ledger: one stream per tenant, merged in settlement order, paged by cursor.

Stream ids come from Redis's clock, so a page across tenants is ordered by (stream id, tenant). A cursor
is ``<ms>-<seq>`` for one tenant, ``<ms>-<seq>@<tenant>`` across tenants.
"""

from __future__ import annotations

import asyncio
import heapq
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from proxy.store.records import RecordPage, RecordQuery, UsageRecord

Run = Callable[[Awaitable[Any]], Awaitable[Any]]

CLOCK_SKEW = 300.0  # a read starts this much before ``since``: stream ids use Redis's clock
SCAN_BUDGET = 10_000  # entries one read takes at most; then it answers with a cursor
_CURSOR = re.compile(r"(\d+)-(\d+)(?:@(.*))?", re.S)


async def read_ledger(
    client: Redis | RedisCluster, run: Run, streams: dict[str, str], query: RecordQuery
) -> RecordPage:
    """One page of the records in ``streams`` (tenant -> stream key); ``run`` bounds each Redis call."""
    cursor = _parse_cursor(query.cursor)
    floor = None if query.since is None else max(0, int((query.since - CLOCK_SKEW) * 1000))
    batch = min(max(query.limit + 1, 64), 1000)
    readers = [_Stream(key, t, _start(t, cursor, floor), batch) for t, key in streams.items()]
    await run(asyncio.gather(*(s.fill(client) for s in readers)))
    heap = [(s.position, i) for i, s in enumerate(readers) if s.entries]
    heapq.heapify(heap)
    page: list[UsageRecord] = []
    last = ""
    scanned = 0
    while heap:
        position, i = heapq.heappop(heap)
        stream = readers[i]
        record = UsageRecord.from_json(stream.entries.pop(0)[1][b"r"])
        mark = _cursor(position, query.tenant is None)
        if query.matches(record):
            if len(page) == query.limit:
                return RecordPage(page, last)
            page.append(record)
            last = mark
        if not stream.entries:
            await run(stream.fill(client))
        if stream.entries:
            heapq.heappush(heap, (stream.position, i))
        scanned += 1
        if scanned >= SCAN_BUDGET and heap:
            return RecordPage(page, mark)
    return RecordPage(page, None)


class _Stream:
    """One tenant's ledger stream, read forward in batches for the k-way merge in ``records``."""

    def __init__(self, key: str, tenant: str, start: str, batch: int) -> None:
        self.key, self.tenant, self.start, self.batch = key, tenant, start, batch
        self.entries: list[Any] = []  # [(id, {b"r": record json})], as redis-py answers XRANGE
        self.done = False

    @property
    def position(self) -> tuple[int, int, str]:
        ms, seq = self.entries[0][0].split(b"-")
        return int(ms), int(seq), self.tenant

    async def fill(self, client: Redis | RedisCluster) -> None:
        if self.done:
            return
        entries: list[Any] = await client.xrange(self.key, self.start, "+", count=self.batch) or []
        self.entries = entries
        self.done = len(entries) < self.batch
        if entries:
            self.start = "(" + entries[-1][0].decode()


def _cursor(position: tuple[int, int, str], with_tenant: bool) -> str:
    ms, seq, tenant = position
    return f"{ms}-{seq}@{tenant}" if with_tenant else f"{ms}-{seq}"


def _parse_cursor(cursor: str | None) -> tuple[int, int, str | None] | None:
    match = _CURSOR.fullmatch(cursor) if cursor else None
    if match is None:
        return None  # like the memory store: an unreadable cursor reads from the start
    return int(match[1]), int(match[2]), match[3]


def _start(tenant: str, cursor: tuple[int, int, str | None] | None, floor: int | None) -> str:
    """Where to start reading one tenant's stream: after the cursor, and not before ``since`` (with slack).

    Across tenants the order is (stream id, tenant): at the cursor's own id, tenants sorting after the
    cursor's tenant have not been returned yet, so their read includes that id.
    """
    start = (floor, 0, False) if floor is not None else (0, 0, False)
    if cursor is not None:
        ms, seq, after = cursor
        exclusive = after is None or tenant <= after
        if (ms, seq) > start[:2] or ((ms, seq) == start[:2] and exclusive):
            start = (ms, seq, exclusive)
    ms, seq, exclusive = start
    return f"{'(' if exclusive else ''}{ms}-{seq}"


@dataclass(frozen=True, slots=True)
class StreamEntry:
    """One ledger stream entry handed to a consumer of a group (acknowledged once it is stored)."""

    key: str  # the tenant's stream
    id: bytes
    record: UsageRecord


PIPELINE_STREAMS = 500


class LedgerGroup:
    """The tenants' ledger streams read through one consumer group, so that each record reaches one
    consumer among all replicas, and stays pending until acknowledged (``XACK``); entries a dead consumer
    held are claimed by another after ``reclaim_idle`` seconds (``XAUTOCLAIM``).

    The group is created at the start of each stream (``0``): records settled before the first consumer
    existed are read too.
    """

    def __init__(
        self, client: Redis | RedisCluster, run: Run, tenants_key: str, stream_of: Callable[[str], str]
    ) -> None:
        self._client, self._run = client, run
        self._tenants_key, self._stream_of = tenants_key, stream_of
        self._created: set[str] = set()

    async def streams(self) -> list[str]:
        members = await self._run(self._client.smembers(self._tenants_key))
        return sorted(self._stream_of(m.decode() if isinstance(m, bytes) else m) for m in members)

    async def read(
        self, group: str, consumer: str, count: int, *, reclaim_idle: float | None = None
    ) -> list[StreamEntry]:
        """Up to ``count`` entries per stream: new ones, and with ``reclaim_idle`` those pending longer."""
        found: list[StreamEntry] = []
        keys = await self.streams()
        for key in keys:
            if key not in self._created:
                await self._run(self._create_group(key, group))
                self._created.add(key)
        # One pipeline per PIPELINE_STREAMS streams: a round trip per batch of tenants, not per tenant.
        for first in range(0, len(keys), PIPELINE_STREAMS):
            batch = keys[first : first + PIPELINE_STREAMS]
            pipe = self._client.pipeline(transaction=False)
            for key in batch:
                if reclaim_idle is not None:
                    pipe.xautoclaim(key, group, consumer, int(reclaim_idle * 1000), "0-0", count=count)
                pipe.xreadgroup(group, consumer, {key: ">"}, count=count)
            replies = await self._run(pipe.execute())
            step = 2 if reclaim_idle is not None else 1
            for index, key in enumerate(batch):
                if reclaim_idle is not None:
                    found += _entries(key, replies[index * step][1])
                for _stream, entries in replies[index * step + step - 1] or []:
                    found += _entries(key, entries)
        return found

    async def _create_group(self, key: str, group: str) -> None:
        try:
            await self._client.xgroup_create(key, group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def ack(self, group: str, entries: list[StreamEntry]) -> None:
        by_key: dict[str, list[bytes]] = {}
        for entry in entries:
            by_key.setdefault(entry.key, []).append(entry.id)
        for key, ids in by_key.items():
            await self._run(self._client.xack(key, group, *ids))

    async def backlog(self, group: str) -> int:
        """Entries not yet acknowledged by the group: waiting (``lag``) and handed out (``pending``)."""
        total = 0
        keys = await self.streams()
        for first in range(0, len(keys), PIPELINE_STREAMS):
            pipe = self._client.pipeline(transaction=False)
            for key in keys[first : first + PIPELINE_STREAMS]:
                pipe.xinfo_groups(key)
            for groups in await self._run(pipe.execute(raise_on_error=False)):
                if isinstance(groups, Exception):
                    continue  # a stream trimmed away and deleted since
                for info in groups:
                    name = info.get("name")
                    if (name.decode() if isinstance(name, bytes) else name) == group:
                        total += int(info.get("lag") or 0) + int(info.get("pending") or 0)
        return total


def _entries(key: str, entries: list[Any]) -> list[StreamEntry]:
    out = []
    for entry_id, values in entries:
        if values and b"r" in values:  # an entry trimmed by MAXLEN while pending has no values
            out.append(StreamEntry(key, entry_id, UsageRecord.from_json(values[b"r"])))
    return out
