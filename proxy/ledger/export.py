"""Export of the ledger as CSV or JSON lines, streamed: chunks of about ``CHUNK`` bytes, never the whole.

From PostgreSQL through a server-side cursor (rows fetched ``PREFETCH`` at a time), or, without it, from
the store's own ledger page by page. Columns are the usage record's fields, in their declared order (the
CSV header); a JSON line is the record's JSON object, as ``/admin/usage/records`` gives it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncGenerator
from dataclasses import asdict
from typing import Any

import orjson

from proxy.errors import InvalidRequest, MeteringUnavailable
from proxy.ledger.postgres import LedgerUnavailable, PostgresLedger
from proxy.ledger.reports import where
from proxy.ledger.rows import FIELDS, SELECT, record_of
from proxy.store.base import Store
from proxy.store.records import RecordQuery

FORMATS = ("csv", "jsonl")
CHUNK = 64 * 1024
PREFETCH = 2000
PAGE = 1000
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/jsonl"}


def format_of(value: str | None) -> str:
    fmt = value or "csv"
    if fmt not in FORMATS:
        raise InvalidRequest("'format' must be csv or jsonl.", param="format")
    return fmt


class _Encoder:
    """Records (as JSON objects) to bytes in one format, buffered up to ``CHUNK``."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.text = io.StringIO()
        self.csv = csv.writer(self.text, lineterminator="\n")
        self.raw = bytearray()
        if fmt == "csv":
            self.csv.writerow(FIELDS)

    def add(self, record: dict[str, Any]) -> bytes | None:
        if self.fmt == "csv":
            self.csv.writerow([_cell(record.get(f)) for f in FIELDS])
            if self.text.tell() < CHUNK:
                return None
            return self.flush()
        self.raw += orjson.dumps(record) + b"\n"
        return self.flush() if len(self.raw) >= CHUNK else None

    def flush(self) -> bytes:
        if self.fmt == "csv":
            out = self.text.getvalue().encode()
            self.text.seek(0)
            self.text.truncate()
            return out
        out, self.raw = bytes(self.raw), bytearray()
        return out


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


async def _encode(fmt: str, records: AsyncGenerator[dict[str, Any], None]) -> AsyncGenerator[bytes, None]:
    encoder = _Encoder(fmt)
    try:
        async for record in records:
            chunk = encoder.add(record)
            if chunk:
                yield chunk
        rest = encoder.flush()
        if rest:
            yield rest
    finally:
        await records.aclose()  # the server-side cursor and its connection go back at once


async def _from_postgres(ledger: PostgresLedger, query: RecordQuery) -> AsyncGenerator[dict[str, Any], None]:
    args: list[Any] = []
    sql = (
        f"SELECT {SELECT} FROM usage_records WHERE {where(query, args)} "
        "ORDER BY usage_records.started_at, usage_records.request_id"  # the columns, not SELECT's epoch
    )
    try:
        async with ledger.connection() as conn, conn.transaction(readonly=True):
            async for row in conn.cursor(sql, *args, prefetch=PREFETCH):
                yield record_of(row)
    except LedgerUnavailable:
        raise MeteringUnavailable(
            "The ledger database does not answer; retry shortly.", retry_after=1.0
        ) from None


async def _from_store(store: Store, query: RecordQuery) -> AsyncGenerator[dict[str, Any], None]:
    cursor: str | None = None
    while True:
        page = await store.records(
            RecordQuery(tenant=query.tenant, since=query.since, until=query.until, limit=PAGE, cursor=cursor)
        )
        for record in page.data:
            yield asdict(record)
        cursor = page.next_cursor
        if cursor is None:
            return


def export(
    fmt: str, query: RecordQuery, *, ledger: PostgresLedger | None, store: Store | None
) -> AsyncGenerator[bytes, None]:
    """The records ``query`` matches (``tenant``, ``since``, ``until``), encoded, chunk by chunk: from
    ``ledger`` when there is one, else from ``store``."""
    if ledger is not None:
        return _encode(fmt, _from_postgres(ledger, query))
    if store is None:
        raise ValueError("export needs the ledger or a store")
    return _encode(fmt, _from_store(store, query))
