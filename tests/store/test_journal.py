"""The settlement journal against a real (private) redis-server: what the store could not take is kept on
disk and settled exactly once when it is back, whoever replays it and however often."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from proxy.config import parse_settings
from proxy.metering.alerts import Alerter
from proxy.metering.meter import start_background
from proxy.store import open_store
from proxy.store.base import Admission, Scope, Settlement, StoreUnavailable
from proxy.store.journal import Journal, JournaledStore
from proxy.store.records import Outcome, RecordQuery, UsageRecord
from proxy.store.redis import RedisStore
from proxy.testing.gateway_process import free_port
from proxy.testing.redis_server import RedisServer

pytestmark = pytest.mark.redis

KEY = Scope("key", "k1", "t1", budget_micro_usd=100_000)


@pytest.fixture
async def store(private_redis: RedisServer) -> AsyncIterator[RedisStore]:
    redis_store = RedisStore(private_redis.url, timeout=0.1, prefix="journal")
    yield redis_store
    await redis_store.close()


def settlement(rid: str, cost: int = 1000, reserved: bool = True) -> Settlement:
    record = UsageRecord(
        rid,
        "k1",
        "t1",
        "m",
        "p",
        "m",
        10,
        5,
        0,
        0,
        0,
        cost,
        None,
        3,
        1,
        Outcome.COMPLETED,
        False,
        time.time(),
    )
    return Settlement(record, (KEY,), 15, cost, reserved)


async def ledger(store: RedisStore) -> list[str]:
    return [r.request_id for r in (await store.records(RecordQuery(tenant="t1", limit=1000))).data]


def files(tmp_path: Path) -> list[Path]:
    return sorted(tmp_path.glob("j-*.jsonl"))


async def test_journaled_settlements_are_replayed_once(tmp_path: Path, store: RedisStore) -> None:
    journal = Journal(tmp_path / "j")
    for i in range(5):
        await journal.append(settlement(f"r{i}"))
    assert len(files(tmp_path)) == 1 and len(files(tmp_path)[0].read_bytes().splitlines()) == 5
    # r0 reached Redis before (its reply was lost): the replay must not count it again.
    await store.settle(settlement("r0"))
    assert await journal.replay(store) == 5
    assert sorted(await ledger(store)) == [f"r{i}" for i in range(5)]
    assert (await store.spend(KEY, time.time())).spent_micro_usd == 5000
    assert files(tmp_path) == []
    # New appends after a replay go to a new file, replayed in turn.
    await journal.append(settlement("r5"))
    assert await journal.replay(store) == 1 and files(tmp_path) == []
    assert (await store.spend(KEY, time.time())).spent_micro_usd == 6000
    await journal.close()


async def test_a_replay_cut_short_replays_harmlessly(
    tmp_path: Path, store: RedisStore, private_redis: RedisServer
) -> None:
    journal = Journal(tmp_path / "j")
    for i in range(3):
        await journal.append(settlement(f"r{i}"))
    await journal.close()  # a stopped writer: its file is anyone's to replay
    await store.settle(settlement("r0"))
    await store.settle(settlement("r1"))  # as if a replayer crashed after two of three
    private_redis.freeze()
    try:
        with pytest.raises(StoreUnavailable):
            await Journal(tmp_path / "j").replay(store)
    finally:
        private_redis.thaw()
    assert len(files(tmp_path)) == 1  # kept whole
    assert await Journal(tmp_path / "j").replay(store) == 3
    assert sorted(await ledger(store)) == ["r0", "r1", "r2"]
    assert (await store.spend(KEY, time.time())).spent_micro_usd == 3000


async def test_a_live_writers_file_is_not_taken_until_rotated(tmp_path: Path, store: RedisStore) -> None:
    writer, other = Journal(tmp_path / "j"), Journal(tmp_path / "j")
    await writer.append(settlement("w1"))
    assert await other.replay(store) == 0  # locked by its writer
    assert len(files(tmp_path)) == 1
    assert await writer.replay(store) == 1  # the writer rotates its own file, then replays it
    await writer.append(settlement("w2"))
    await writer.close()
    assert await other.replay(store) == 1  # a closed (or dead) writer's file is an orphan anyone replays
    assert sorted(await ledger(store)) == ["w1", "w2"]


async def test_a_torn_last_line_is_skipped(tmp_path: Path, store: RedisStore) -> None:
    journal = Journal(tmp_path / "j")
    await journal.append(settlement("ok"))
    await journal.close()
    with files(tmp_path)[0].open("ab") as f:
        f.write(b'{"record": {"request_id": "torn"')  # a crash in the middle of a write
    assert await Journal(tmp_path / "j").replay(store) == 1
    assert await ledger(store) == ["ok"] and files(tmp_path) == []


async def test_the_journaled_store_journals_what_redis_cannot_take(
    tmp_path: Path, store: RedisStore, private_redis: RedisServer
) -> None:
    wrapped = JournaledStore(store, Journal(tmp_path / "j"))
    assert (await wrapped.admit(Admission("a1", (KEY,), 15, 1000, time.time()))).admitted
    private_redis.freeze()
    try:
        started = time.monotonic()
        assert await wrapped.settle(settlement("a1")) == []  # neither raises nor waits past the timeout
        assert await wrapped.settle(settlement("u1", reserved=False)) == []
        assert time.monotonic() - started < 0.1 + 0.1
    finally:
        private_redis.thaw()
    # Not reserved: journaled without asking Redis, even though it answers now.
    assert await wrapped.settle(settlement("u2", reserved=False)) == []
    await wrapped.drain()
    # a1 may have landed late (the wrapper stopped waiting, the store's own call went on) or be journaled.
    late = await ledger(store)
    assert late in ([], ["a1"])
    assert await wrapped.journal.replay(store) == 3 - len(late)
    spend = await store.spend(KEY, time.time())
    assert (spend.spent_micro_usd, spend.reserved_micro_usd) == (3000, 0)  # a1's reservation released
    assert sorted(await ledger(store)) == ["a1", "u1", "u2"]
    await wrapped.journal.close()


async def test_a_journaled_store_asks_for_its_replay_and_the_redis_alert_feed(
    tmp_path: Path, store: RedisStore
) -> None:
    wrapped = JournaledStore(store, Journal(tmp_path / "j"))
    assert wrapped.settle_is_shielded and wrapped.alert_feed is store
    alerter = Alerter(None, {})
    tasks = start_background(wrapped, alerter)
    try:
        assert [task.get_name() for task in tasks] == ["efflux-journal-replay", "efflux-alert-feed"]
        assert alerter.shared  # budget alerts now come from the shared feed, not the settling request
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await wrapped.journal.close()


async def test_open_store_journals_where_store_journal_says(tmp_path: Path) -> None:
    """``store.journal`` names the files a Redis deployment journals to (here Redis is not even there)."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    journal = tmp_path / "ledger-spool"
    settings = parse_settings(
        {"store": {"backend": "redis", "url": url, "timeout": "50ms", "journal": str(journal)}}
    )
    store = open_store(settings)
    assert isinstance(store, JournaledStore)
    try:
        assert await store.settle(settlement("u1", reserved=False)) == []
        await store.drain()
    finally:
        await store.close()
    files = await asyncio.to_thread(lambda: [p.name for p in tmp_path.iterdir()])
    assert len(files) == 1 and files[0].startswith("ledger-spool-"), files
