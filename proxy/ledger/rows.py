"""A usage record as a row of ``usage_records``, and back.

Columns follow the record's fields (``proxy.store.records.UsageRecord``); ``started_at`` is a timestamptz
(unix seconds in the record). A field the table has no column for yet goes into ``extra`` (jsonb), so
nothing is lost between a release that adds a field and the migration that adds its column.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import fields
from typing import Any

import orjson

from proxy.store.records import Outcome, UsageRecord

UTC = datetime.UTC
FIELDS: tuple[str, ...] = tuple(f.name for f in fields(UsageRecord))
# PostgreSQL types of the columns the first migration creates (the unnest() casts of a batch INSERT).
TYPES: dict[str, str] = {
    "request_id": "text",
    "key": "text",
    "tenant": "text",
    "model": "text",
    "provider": "text",
    "upstream_model": "text",
    "prompt_tokens": "bigint",
    "completion_tokens": "bigint",
    "cached_tokens": "bigint",
    "cache_write_tokens": "bigint",
    "reasoning_tokens": "bigint",
    "cost_micro_usd": "bigint",
    "provider_cost_micro_usd": "bigint",
    "latency_ms": "bigint",
    "ttfb_ms": "bigint",
    "outcome": "text",
    "estimated": "boolean",
    "started_at": "timestamptz",
    "endpoint": "text",
    "status": "integer",
    "attempts": "integer",
    "client_request_id": "text",
    "price_source": "text",
    "unit": "text",
    "units": "bigint",
    "extra": "jsonb",
}
# What a SELECT reads back as the record's fields (started_at as unix seconds).
SELECT = ", ".join(
    "extract(epoch FROM started_at)::float8 AS started_at" if c == "started_at" else c for c in TYPES
)


def timestamp(seconds: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(seconds, UTC)


class Layout:
    """Which record fields have columns in this database (``columns``: the table's, read at start)."""

    def __init__(self, columns: Iterable[str]) -> None:
        present = set(columns)
        self.columns = [c for c in TYPES if c in present and c != "extra"]
        self.stored = [c for c in self.columns if c in FIELDS]
        self.extra = "extra" in present
        self.types = [TYPES[c] for c in self.columns] + (["jsonb"] if self.extra else [])

    def insert_sql(self) -> str:
        """One INSERT of a whole batch: one array parameter per column, a replay changes nothing."""
        names = [*self.columns, *(["extra"] if self.extra else [])]
        arrays = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(self.types))
        return (
            f"INSERT INTO usage_records ({', '.join(names)}) SELECT * FROM unnest({arrays}) "
            "ON CONFLICT DO NOTHING"
        )

    def arrays(self, records: Sequence[UsageRecord]) -> list[list[Any]]:
        """The batch as one list per column (``unnest`` zips them back into rows)."""
        out: list[list[Any]] = []
        for column in self.columns:
            if column == "started_at":
                out.append([timestamp(r.started_at) for r in records])
            elif column in FIELDS:
                out.append([_plain(getattr(r, column)) for r in records])
            else:
                out.append([None] * len(records))  # a column of a newer release's field
        if self.extra:
            rest = [f for f in FIELDS if f not in self.columns]
            out.append(
                [orjson.dumps({f: getattr(r, f) for f in rest}).decode() if rest else None for r in records]
            )
        return out


def _plain(value: object) -> object:
    return value.value if isinstance(value, Outcome) else value


def record_of(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row read with ``SELECT`` as the record's JSON object (the shape ``dataclasses.asdict`` gives)."""
    data = {f: row[f] for f in FIELDS if f in row}
    extra = row.get("extra")
    if extra:
        for name, value in orjson.loads(extra).items():
            if name in FIELDS and name not in data:
                data[name] = value
    return data
