"""The store contract, run against every backend: memory, Redis, and Redis Cluster (see conftest.py).

Whatever one backend does here, all must do: limits and budgets exact under concurrency, admission and
settlement idempotent by request id, alerts once, the ledger readable by filter and cursor.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

from proxy.store.base import Admission, Period, Scope, Settlement, Store, Verdict
from proxy.store.records import Outcome, RecordQuery, UsageRecord

KEY = Scope("key", "k1", "t1")
TENANT = Scope("tenant", "t1", "t1")


def limited(scope: Scope, **limits: object) -> Scope:
    return dataclasses.replace(scope, **limits)  # type: ignore[arg-type]


def admission(rid: str, *scopes: Scope, now: float, tokens: int = 100, cost: int = 1000) -> Admission:
    return Admission(rid, scopes, tokens, cost, now)


def record(
    rid: str, *, started_at: float, cost: int = 1000, key: str = "k1", tenant: str = "t1"
) -> UsageRecord:
    return UsageRecord(
        rid, key, tenant, "gpt-x", "openai", "gpt-x-2025", 60, 40, 0, 0, 0, cost, None, 120, 30,
        Outcome.COMPLETED, False, started_at, price_source="genai-prices",  # kept by every backend
    )  # fmt: skip


def settlement(
    rid: str, *scopes: Scope, started_at: float, cost: int = 1000, tokens: int = 100
) -> Settlement:
    tenant = scopes[0].tenant if scopes else "t1"
    key = next((s.name for s in scopes if s.kind == "key"), "k1")
    return Settlement(
        record(rid, started_at=started_at, cost=cost, key=key, tenant=tenant), scopes, tokens, cost
    )


async def test_rpm_is_an_exact_sliding_window(store: Store) -> None:
    now = time.time()
    key = limited(KEY, rpm=3)
    for i in range(3):
        assert (await store.admit(admission(f"r{i}", key, now=now + i))).admitted
    refused = await store.admit(admission("r3", key, now=now + 3))
    assert (refused.verdict, refused.limit, refused.refused_by) == (Verdict.RATE_LIMITED, "rpm", key)
    assert refused.retry_after is not None and abs(refused.retry_after - 57.0) < 1e-6
    # r0 leaves the window exactly 60 s after it was admitted; r1 and r2 are still in it.
    assert (await store.admit(admission("r4", key, now=now + 60))).admitted
    assert not (await store.admit(admission("r5", key, now=now + 60.5))).admitted
    assert (await store.admit(admission("r6", key, now=now + 61))).admitted


async def test_tpm_counts_estimates_until_settlement_corrects_them(store: Store) -> None:
    now = time.time()
    key = limited(KEY, tpm=1000)
    first = await store.admit(admission("r1", key, now=now, tokens=800))
    assert first.headroom.limit_tokens == 1000 and first.headroom.remaining_tokens == 200
    refused = await store.admit(admission("r2", key, now=now + 1, tokens=300))
    assert (refused.verdict, refused.limit) == (Verdict.RATE_LIMITED, "tpm")
    assert refused.retry_after is not None and abs(refused.retry_after - 59.0) < 1e-6
    await store.settle(settlement("r1", key, started_at=now, tokens=800))  # actual: 60 + 40 tokens
    second = await store.admit(admission("r2", key, now=now + 2, tokens=300))
    assert second.admitted and second.headroom.remaining_tokens == 1000 - 100 - 300


async def test_headroom_reports_the_first_key_scope_with_limits(store: Store) -> None:
    now = time.time()
    key = limited(KEY, rpm=10, tpm=5000)
    tenant = limited(TENANT, rpm=1000)
    decision = await store.admit(admission("r1", tenant, key, now=now, tokens=700))
    assert decision.headroom.limit_requests == 10 and decision.headroom.remaining_requests == 9
    assert decision.headroom.limit_tokens == 5000 and decision.headroom.remaining_tokens == 4300


async def test_budget_refuses_past_spent_plus_reserved(store: Store) -> None:
    now = time.time()
    key = limited(KEY, budget_micro_usd=5000, period=Period.DAILY)
    assert (await store.admit(admission("r1", key, now=now, cost=3000))).admitted
    refused = await store.admit(admission("r2", key, now=now, cost=3000))
    assert (refused.verdict, refused.limit, refused.refused_by) == (Verdict.BUDGET_EXCEEDED, "budget", key)
    ends = Period.DAILY.window(now)[1]
    assert ends is not None and refused.retry_after == ends - now
    assert (await store.admit(admission("r3", key, now=now, cost=2000))).admitted  # exactly the budget


async def test_refusal_in_one_scope_reserves_in_none(store: Store) -> None:
    now = time.time()
    key = limited(KEY, rpm=10, tpm=10_000, budget_micro_usd=100_000)
    tenant = limited(TENANT, budget_micro_usd=2000)
    refused = await store.admit(admission("r1", key, tenant, now=now, cost=3000))
    assert refused.refused_by == tenant
    assert (await store.spend(key, now)).reserved_micro_usd == 0
    after = await store.admit(admission("r2", key, now=now, tokens=100))
    assert after.headroom.remaining_requests == 9 and after.headroom.remaining_tokens == 9900


async def test_admission_is_idempotent_by_request_id(store: Store) -> None:
    now = time.time()
    key = limited(KEY, rpm=5, budget_micro_usd=100_000)
    first = await store.admit(admission("r1", key, now=now, cost=4000))
    assert await store.admit(admission("r1", key, now=now + 1, cost=4000)) == first
    assert (await store.spend(key, now)).reserved_micro_usd == 4000
    await store.settle(settlement("r1", key, started_at=now, cost=1500))
    # A replay after settlement still answers the first decision and reserves nothing again.
    assert await store.admit(admission("r1", key, now=now + 2, cost=4000)) == first
    spend = await store.spend(key, now)
    assert (spend.spent_micro_usd, spend.reserved_micro_usd) == (1500, 0)
    assert (await store.admit(admission("r2", key, now=now + 3))).headroom.remaining_requests == 3


async def test_settlement_moves_the_reservation_to_the_actual_cost(store: Store) -> None:
    now = time.time()
    key = limited(KEY, budget_micro_usd=100_000)
    tenant = limited(TENANT, budget_micro_usd=1_000_000)
    assert (await store.admit(admission("r1", key, tenant, now=now, cost=5000))).admitted
    for scope in (key, tenant):
        assert (await store.spend(scope, now)).reserved_micro_usd == 5000
    await store.settle(settlement("r1", key, tenant, started_at=now, cost=1234))
    for scope in (key, tenant):
        spend = await store.spend(scope, now)
        assert (spend.spent_micro_usd, spend.reserved_micro_usd) == (1234, 0)
        assert spend.period == scope.period.window(now)[0]


async def test_settlement_is_idempotent_by_request_id(store: Store) -> None:
    now = time.time()
    key = limited(KEY, budget_micro_usd=10_000)
    await store.admit(admission("r1", key, now=now, cost=5000))
    first = await store.settle(settlement("r1", key, started_at=now, cost=6000))
    assert [c.threshold for c in first] == [0.5]
    assert await store.settle(settlement("r1", key, started_at=now, cost=6000)) == []
    spend = await store.spend(key, now)
    assert (spend.spent_micro_usd, spend.reserved_micro_usd) == (6000, 0)
    assert [r.request_id for r in (await store.records(RecordQuery())).data] == ["r1"]


async def test_settlement_without_admission_charges_the_records_period(store: Store) -> None:
    """What a journal replayed after an outage does: no reservation to release, the cost still counts."""
    now = time.time()
    key = limited(KEY, budget_micro_usd=10_000, period=Period.DAILY)
    yesterday = now - 86400
    await store.settle(settlement("r1", key, started_at=yesterday, cost=700))
    await store.settle(settlement("r1", key, started_at=yesterday, cost=700))
    assert (await store.spend(key, yesterday)).spent_micro_usd == 700
    assert (await store.spend(key, now)).spent_micro_usd == 0
    assert len((await store.records(RecordQuery(key="k1"))).data) == 1


async def test_a_reservation_is_settled_in_the_period_it_was_made_in(store: Store) -> None:
    ends = Period.DAILY.window(time.time())[1]
    assert ends is not None
    key = limited(KEY, budget_micro_usd=10_000, period=Period.DAILY)
    await store.admit(admission("r1", key, now=ends - 0.5, cost=3000))
    await store.settle(settlement("r1", key, started_at=ends + 0.5, cost=2500))
    before, after = await store.spend(key, ends - 0.5), await store.spend(key, ends + 0.5)
    assert (before.spent_micro_usd, before.reserved_micro_usd) == (2500, 0)
    assert (after.spent_micro_usd, after.reserved_micro_usd) == (0, 0)


async def test_alert_thresholds_are_crossed_once(store: Store) -> None:
    now = time.time()
    key = limited(KEY, budget_micro_usd=10_000)
    seen = []
    for i, cost in enumerate([4000, 1000, 3500, 2000, 100]):
        crossings = await store.settle(settlement(f"r{i}", key, started_at=now, cost=cost))
        seen.append([(c.threshold, c.spent_micro_usd, c.budget_micro_usd, c.scope) for c in crossings])
    assert seen == [
        [],
        [(0.5, 5000, 10_000, key)],
        [(0.8, 8500, 10_000, key)],
        [(1.0, 10_500, 10_000, key)],
        [],
    ]


async def test_concurrent_settlements_alert_once_per_threshold(store: Store) -> None:
    now = time.time()
    key = limited(KEY, budget_micro_usd=100_000)
    tenant = limited(TENANT, budget_micro_usd=200_000, alert_at=(0.25, 0.5))
    results = await asyncio.gather(
        *(store.settle(settlement(f"r{i}", key, tenant, started_at=now, cost=2000)) for i in range(50))
    )
    crossings = sorted((c.scope.kind, c.threshold) for r in results for c in r)
    assert crossings == [("key", 0.5), ("key", 0.8), ("key", 1.0), ("tenant", 0.25), ("tenant", 0.5)]
    period = Period.MONTHLY.window(now)[0]
    assert all(c.period == period for r in results for c in r)


async def test_budget_race_admits_exactly_what_is_left(store: Store) -> None:
    """$0.010 left, 50 concurrent requests of $0.001 each: exactly 10 get through."""
    now = time.time()
    key = limited(KEY, budget_micro_usd=1_000_000)
    tenant = limited(TENANT, budget_micro_usd=1_000_000)
    await store.settle(settlement("earlier", key, tenant, started_at=now, cost=990_000))
    decisions = await asyncio.gather(
        *(store.admit(admission(f"r{i}", key, tenant, now=now, cost=1000)) for i in range(50))
    )
    admitted = [f"r{i}" for i, d in enumerate(decisions) if d.admitted]
    assert len(admitted) == 10
    assert {d.verdict for d in decisions if not d.admitted} == {Verdict.BUDGET_EXCEEDED}
    await asyncio.gather(*(store.settle(settlement(rid, key, tenant, started_at=now)) for rid in admitted))
    spend = await store.spend(key, now)
    assert (spend.spent_micro_usd, spend.reserved_micro_usd) == (1_000_000, 0)


async def test_a_budget_refusal_tells_what_is_spent_and_what_is_held(store: Store) -> None:
    """The refusal carries the scope's spent and reserved amounts, so that the client can be told
    whether the budget is spent or only this request's worst case does not fit (issue 14, item 11)."""
    now = time.time()
    key = limited(KEY, budget_micro_usd=10_000)
    await store.settle(settlement("earlier", key, started_at=now, cost=6000))
    assert (await store.admit(admission("held", key, now=now, cost=3000))).admitted
    refused = await store.admit(admission("big", key, now=now, cost=2000))
    assert refused.verdict is Verdict.BUDGET_EXCEEDED
    assert (refused.spent_micro_usd, refused.reserved_micro_usd) == (6000, 3000)


async def test_budget_periods(store: Store) -> None:
    now = time.time()
    scopes = {p: limited(KEY, name=f"k-{p}", budget_micro_usd=10**9, period=p) for p in Period}
    for p, scope in scopes.items():
        await store.admit(admission(f"r-{p}", scope, now=now))
        await store.settle(settlement(f"r-{p}", scope, started_at=now, cost=1000))
    for later in (now + 86400, now + 8 * 86400, now + 40 * 86400, now + 400 * 86400):
        for p, scope in scopes.items():
            spend = await store.spend(scope, later)
            same_period = p.window(later)[0] == p.window(now)[0]
            assert spend.spent_micro_usd == (1000 if same_period else 0), (p, later)
            assert spend.period == p.window(later)[0]
    assert (await store.spend(scopes[Period.TOTAL], now + 400 * 86400)).spent_micro_usd == 1000


async def _settle_ledger(store: Store, base: float) -> list[UsageRecord]:
    records = []
    for i in range(30):
        tenant, key = [("t1", "k1"), ("t1", "k2"), ("t2", "k3")][i % 3]
        item = record(f"r{i:02d}", started_at=base + i, key=key, tenant=tenant)
        await store.settle(Settlement(item, (Scope("key", key, tenant),), 100, 1000))
        records.append(item)
    return records


async def _all_pages(store: Store, query: RecordQuery) -> list[list[UsageRecord]]:
    pages = [await store.records(query)]
    while pages[-1].next_cursor is not None:
        cursor = pages[-1].next_cursor
        pages.append(await store.records(dataclasses.replace(query, cursor=cursor)))
        assert len(pages) < 50
    return [page.data for page in pages]


async def test_records_filter_by_key_tenant_and_time(store: Store) -> None:
    base = time.time() - 100
    records = await _settle_ledger(store, base)
    by_tenant = (await store.records(RecordQuery(tenant="t1"))).data
    assert by_tenant == [r for r in records if r.tenant == "t1"]  # settlement order within a tenant
    by_key = (await store.records(RecordQuery(key="k3"))).data
    assert by_key == [r for r in records if r.key == "k3"]
    window = (await store.records(RecordQuery(since=base + 10, until=base + 20))).data
    assert sorted(r.request_id for r in window) == [f"r{i:02d}" for i in range(10, 20)]
    assert [r.request_id for r in (await store.records(RecordQuery(request_id="r07"))).data] == ["r07"]
    assert (await store.records(RecordQuery(tenant="nobody"))).data == []


async def test_records_paginate_with_a_cursor(store: Store) -> None:
    records = await _settle_ledger(store, time.time() - 100)
    pages = await _all_pages(store, RecordQuery(limit=7))
    assert [len(p) for p in pages] == [7, 7, 7, 7, 2]
    flat = [r for page in pages for r in page]
    assert sorted(r.request_id for r in flat) == sorted(r.request_id for r in records)
    t1_pages = await _all_pages(store, RecordQuery(tenant="t1", limit=5))
    assert [r for page in t1_pages for r in page] == [r for r in records if r.tenant == "t1"]
    assert [len(p) for p in t1_pages] == [5, 5, 5, 5]  # no empty page after an exact fit
    filtered = await _all_pages(store, RecordQuery(key="k2", since=time.time() - 90, limit=3))
    assert [r.request_id for page in filtered for r in page] == [f"r{i:02d}" for i in range(13, 30, 3)]


async def test_spend_of_an_unused_scope_is_zero(store: Store) -> None:
    now = time.time()
    spend = await store.spend(limited(KEY, budget_micro_usd=5), now)
    assert (spend.spent_micro_usd, spend.reserved_micro_usd) == (0, 0)
    await store.ping()


async def test_documents_bump_their_kinds_version(store: Store) -> None:
    assert await store.doc_version("keys") == 0 and await store.get_doc("keys", "a") is None
    assert await store.put_doc("keys", "a", b'{"x": 1}') == 1
    assert await store.put_doc("keys", "b:c", b"{}") == 2
    assert await store.put_doc("keys", "a", b'{"x": 2}') == 3
    assert await store.get_doc("keys", "a") == b'{"x": 2}'
    assert await store.list_docs("keys") == {"a": b'{"x": 2}', "b:c": b"{}"}
    assert await store.delete_doc("keys", "a") and not await store.delete_doc("keys", "a")
    assert await store.doc_version("keys") == 4 and await store.list_docs("keys") == {"b:c": b"{}"}
    assert await store.doc_version("tenants") == 0 and await store.list_docs("tenants") == {}


async def test_a_lock_has_one_holder_until_it_expires(store: Store) -> None:
    assert await store.try_lock("sync", "replica-1", 0.3)
    assert await store.try_lock("sync", "replica-1", 0.3)  # renewal
    assert not await store.try_lock("sync", "replica-2", 0.3)
    assert await store.try_lock("other", "replica-2", 0.3)
    await asyncio.sleep(0.4)
    assert await store.try_lock("sync", "replica-2", 0.3)


async def test_a_kept_response_lives_until_its_ttl_or_its_deletion(store: Store) -> None:
    assert await store.get_response("resp_a") is None and not await store.delete_response("resp_a")
    await store.put_response("resp_a", b'{"a": 1}', 60)
    await store.put_response("resp_b", b'{"b": 1}', 0.2)
    await store.put_response("resp_a", b'{"a": 2}', 60)  # replaced
    assert await store.get_response("resp_a") == b'{"a": 2}'
    assert await store.delete_response("resp_a") and await store.get_response("resp_a") is None
    assert await store.get_response("resp_b") == b'{"b": 1}'
    await asyncio.sleep(0.3)
    assert await store.get_response("resp_b") is None


async def test_each_store_declares_what_metering_needs(store: Store) -> None:
    # Neither needs a task of its own; the Redis store is its own alert feed, and its settlement (one
    # script call) may be cut by a cancelled caller, so metering shields it; the memory store's cannot.
    assert store.background() == {}
    if store.alert_feed is None:
        assert store.settle_is_shielded
    else:
        assert store.alert_feed is store
        assert not store.settle_is_shielded
