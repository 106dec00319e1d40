"""What each virtual key did lately, from the ledger: requests, spend and when it was last used (the keys
page shows it beside each key). Keys are named by ``(tenant, name)`` as the ledger records them."""

from __future__ import annotations

from pydantic import BaseModel

from proxy.gateway import Gateway
from proxy.services.analytics import read_records
from proxy.store.records import RecordQuery


class KeyActivity(BaseModel):
    tenant: str
    key: str
    requests: int
    cost_micro_usd: int
    last_used_at: float


class KeyActivityList(BaseModel):
    since: float
    data: list[KeyActivity]
    truncated: bool


async def activity(gw: Gateway, since: float, tenant: str | None = None) -> dict[str, object]:
    """Per key with traffic since ``since``: requests, spend, the start of its latest request."""
    records, truncated = await read_records(gw, RecordQuery(since=since, tenant=tenant))
    rows: dict[tuple[str, str], KeyActivity] = {}
    for r in records:
        row = rows.get((r.tenant, r.key))
        if row is None:
            rows[(r.tenant, r.key)] = KeyActivity(
                tenant=r.tenant,
                key=r.key,
                requests=1,
                cost_micro_usd=r.cost_micro_usd,
                last_used_at=r.started_at,
            )
        else:
            row.requests += 1
            row.cost_micro_usd += r.cost_micro_usd
            row.last_used_at = max(row.last_used_at, r.started_at)
    data = [rows[k].model_dump() for k in sorted(rows)]
    return {"since": since, "data": data, "truncated": truncated}
