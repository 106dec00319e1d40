"""The Redis store's per-request scripts: the keys and arguments ``admit.lua`` and ``settle.lua`` are
called with, and what their replies (and the alert feed entries ``settle.lua`` writes) mean.

Pure functions of a request: no I/O here; :mod:`.redis` sends the calls and describes the key layout.
``base`` is a tenant's key prefix (:func:`tenant_base`): every key of one call shares its hash tag.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from proxy.store.base import (
    Admission,
    Crossing,
    Decision,
    FedAlert,
    Headroom,
    Scope,
    Settlement,
    StoreUnavailable,
    Verdict,
)
from proxy.store.memory import WINDOW

PERIOD_MARGIN = 7 * 86400.0  # budget counters outlive their period by this much, for reports on it
FEED_GROUP = "notifier"
FEED_TTL = 40 * 86400.0  # a feed outlives the month of its last crossing
FEED_MAXLEN = 1000


@functools.lru_cache(maxsize=65536)
def escape(part: str) -> str:
    """Keep user-chosen names from forging a hash tag or another key's name (cached: the same tenants
    and keys come back on every request)."""
    return part.replace("%", "%25").replace("{", "%7B").replace("}", "%7D").replace(":", "%3A")


def tenant_base(prefix: str, tenant: str) -> str:
    return f"{prefix}:{{{escape(tenant)}}}"


def scope_part(scope: Scope) -> str:
    return f"{scope.kind}:{escape(scope.name)}"


def tenant_of(scopes: Sequence[Scope], tenant: str) -> str:
    # One tenant per call is what keeps a script in one Cluster slot.
    if any(scope.tenant != tenant for scope in scopes):
        raise ValueError(f"every scope of a request must belong to its tenant {tenant!r}")
    return tenant


def ms(seconds: float) -> str:
    return str(max(1, int(seconds * 1000)))


def _opt(value: int | None) -> str:
    return "" if value is None else str(value)


def _int_or_none(raw: bytes) -> int | None:
    return int(raw) if raw else None


def admit_call(
    base: str, admission: Admission, reservation_ttl: float, record_ms: str
) -> tuple[list[str], list[str]]:
    """Keys and arguments of ``admit.lua``."""
    now = admission.now
    scopes = admission.scopes
    keys = [f"{base}:req:{admission.request_id}"]
    args = [
        admission.request_id,
        repr(now),
        repr(now - WINDOW),
        str(admission.tokens),
        str(admission.cost_micro_usd),
        repr(now + reservation_ttl),
        ms(WINDOW + 1.0),
        record_ms,
        str(len(scopes)),
    ]
    for scope in scopes:
        part = scope_part(scope)
        period, ends = scope.period.window(now)
        keys += [f"{base}:win:{part}", f"{base}:tok:{part}", f"{base}:bud:{part}:{period}"]
        keys.append(f"{base}:exp:{part}:{period}")
        budget_ms = "" if ends is None else ms(ends - now + PERIOD_MARGIN)
        args += [scope.kind, scope.ident, _opt(scope.rpm), _opt(scope.tpm)]
        args += [_opt(scope.budget_micro_usd), period, budget_ms]
    return keys, args


def decision(reply: list[Any], admission: Admission) -> Decision:
    """The admission's decision from ``admit.lua``'s reply."""
    verdict = Verdict(reply[0].decode())
    if verdict is Verdict.ADMITTED:
        return Decision(verdict, headroom=Headroom(*(_int_or_none(raw) for raw in reply[1:5])))
    scope = admission.scopes[int(reply[1]) - 1]
    limit = reply[2].decode()
    now = admission.now
    if limit == "budget":
        ends = scope.period.window(now)[1]
        spent, held = (int(reply[4]), int(reply[5])) if len(reply) > 5 else (None, None)
        return Decision(
            verdict,
            scope,
            limit,
            None if ends is None else ends - now,
            spent_micro_usd=spent,
            reserved_micro_usd=held,
        )
    retry = float(reply[3]) + WINDOW - now if reply[3] else WINDOW
    return Decision(verdict, scope, limit, max(retry, 0.001))


def settle_call(
    base: str, settlement: Settlement, max_records: int, record_ms: str
) -> tuple[list[str], list[str | bytes]]:
    """Keys and arguments of ``settle.lua``."""
    record = settlement.record
    scopes = settlement.scopes
    if record.cost_micro_usd < 0:
        raise ValueError("a settlement cost must not be negative")
    keys = [f"{base}:req:{record.request_id}", f"{base}:ledger", f"{base}:alerts"]
    args: list[str | bytes] = [
        record.request_id,
        str(record.total_tokens),
        str(record.cost_micro_usd),
        record.to_json(),
        str(max_records),
        record_ms,
        str(len(scopes)),
        FEED_GROUP,
        ms(FEED_TTL),
        str(FEED_MAXLEN),
    ]
    for scope in scopes:
        part = scope_part(scope)
        period, ends = scope.period.window(record.started_at)
        keys += [f"{base}:tok:{part}", f"{base}:bud:{part}:{period}"]
        keys += [f"{base}:exp:{part}:{period}", f"{base}:alr:{part}:{period}"]
        budget_ms = "" if ends is None else ms(ends - record.started_at + PERIOD_MARGIN)
        thresholds = ",".join(repr(float(t)) for t in scope.alert_at)
        args += [scope.ident, _opt(scope.budget_micro_usd), period, budget_ms, thresholds]
    return keys, args


def crossings(reply: list[Any], settlement: Settlement) -> list[Crossing]:
    """The alert thresholds crossed, from ``settle.lua``'s reply."""
    out = []
    for index, threshold_index, spent, period in reply:
        scope = settlement.scopes[int(index) - 1]
        threshold = scope.alert_at[int(threshold_index) - 1]
        budget = scope.budget_micro_usd or 0
        out.append(Crossing(scope, period.decode(), threshold, int(spent), budget))
    return out


def fed_alerts(tenant: str, reply: Any) -> list[FedAlert]:
    """Entries of one XREADGROUP or XAUTOCLAIM reply (an error: no feed yet for this tenant, or none)."""
    if isinstance(reply, Exception):
        if "NOGROUP" not in str(reply):
            raise StoreUnavailable(f"redis: {reply!r}")
        return []
    if not reply:
        return []
    entries = reply[1] if isinstance(reply[0], bytes) else reply[0][1]  # XAUTOCLAIM | XREADGROUP
    out = []
    for entry_id, fields in entries:
        if not fields:
            continue  # deleted by MAXLEN while pending
        kind, _, name = fields[b"ident"].decode().partition(":")
        scope = Scope(kind, name, tenant, budget_micro_usd=int(fields[b"budget"]))
        threshold = float(fields[b"threshold"])
        crossing = Crossing(
            scope, fields[b"period"].decode(), threshold, int(fields[b"spent"]), scope.budget_micro_usd or 0
        )
        out.append(FedAlert(entry_id.decode(), crossing, int(entry_id.split(b"-")[0]) / 1000))
    return out
