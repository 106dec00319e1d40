"""Keys the snapshot does not know yet, found in the store by digest: one read per lookup, unknown digests
remembered (bounded in size and time), reads for misses rationed."""

from __future__ import annotations

from typing import Any

from support import base_config

from proxy.config import parse_settings
from proxy.services.keys import KeyCreate, create_key, delete_key
from proxy.state.snapshot import Snapshot, build_snapshot
from proxy.store.memory import MemoryStore
from proxy.tenancy.documents import KEY_DIGESTS, KEYS, KeyDoc
from proxy.tenancy.lookup import KeyLookup
from proxy.testing.clock import FakeClock

KEY_SECRET = b"lookup-test-key-secret-0123456789abcdef"


class CountingStore(MemoryStore):
    """The memory store, counting the digest documents read."""

    def __init__(self) -> None:
        super().__init__()
        self.digest_reads = 0

    async def get_doc(self, kind: str, id: str) -> bytes | None:
        if kind == KEY_DIGESTS:
            self.digest_reads += 1
        return await super().get_doc(kind, id)


def snapshot(**sections: Any) -> Snapshot:
    return build_snapshot(
        parse_settings(base_config("http://127.0.0.1:9", **sections)), key_secret=KEY_SECRET
    )


async def test_a_key_only_the_store_has_is_found_and_not_kept() -> None:
    store, snap, lookup = CountingStore(), snapshot(), KeyLookup(clock=FakeClock())
    created = await create_key(store, snap, KeyCreate(name="fresh", tenant="t1"))
    secret = str(created["key"])
    assert snap.keys.lookup(secret) is None  # the snapshot was built before the key
    key = await lookup.find(store, snap, secret)
    assert key is not None and (key.name, key.tenant, key.id) == ("fresh", "t1", created["id"])
    assert store.digest_reads == 1
    assert await lookup.find(store, snap, "egw-test-key-0123456789") is not None  # the ring: no read
    assert store.digest_reads == 1

    assert await delete_key(store, str(created["id"]))
    assert await store.list_docs(KEY_DIGESTS) == {}
    assert await lookup.find(store, snap, secret) is None  # not cached: revoked means refused at once
    assert store.digest_reads == 2


async def test_a_yaml_name_and_a_mismatched_digest_are_refused() -> None:
    store, snap, lookup = CountingStore(), snapshot(), KeyLookup(clock=FakeClock())
    secret = "egw-copied-under-another-digest-0123"
    digest = snap.keys.digest(secret).hex()
    other = KeyDoc(id="key_1", name="copy", tenant="t1", digest="00" * 32)
    await store.put_doc(KEY_DIGESTS, digest, other.model_dump_json().encode())
    assert await lookup.find(store, snap, secret) is None
    yaml_name = KeyDoc(id="key_2", name="test", tenant="evil", digest=digest)  # "test" is a YAML key
    await store.put_doc(KEY_DIGESTS, digest, yaml_name.model_dump_json().encode())
    assert await KeyLookup(clock=FakeClock()).find(store, snap, secret) is None


async def test_an_unknown_digest_is_read_once_per_ttl() -> None:
    clock = FakeClock()
    store, snap, lookup = CountingStore(), snapshot(), KeyLookup(clock=clock)
    for _ in range(5_000):
        assert await lookup.find(store, snap, "egw-never-issued-0123456789") is None
    assert store.digest_reads == 1
    clock.advance(1.01)
    assert await lookup.find(store, snap, "egw-never-issued-0123456789") is None
    assert store.digest_reads == 2


async def test_a_flood_of_distinct_unknown_keys_costs_a_bounded_number_of_reads() -> None:
    clock = FakeClock()
    store, snap, lookup = CountingStore(), snapshot(), KeyLookup(clock=clock)
    for i in range(5_000):
        assert await lookup.find(store, snap, f"egw-random-{i:08d}") is None
    assert store.digest_reads == 50  # the burst; the clock did not move, so nothing refilled
    clock.advance(1.0)  # a second later a new key is found again
    created = await create_key(store, snap, KeyCreate(name="after-flood"))
    assert await lookup.find(store, snap, str(created["key"])) is not None
    assert store.digest_reads == 51


async def test_the_unknown_digests_kept_are_bounded() -> None:
    clock = FakeClock()
    store, snap = CountingStore(), snapshot()
    lookup = KeyLookup(clock=clock, negative_size=100, reads_per_second=1e9, burst=1e9)
    for i in range(1_000):
        await lookup.find(store, snap, f"egw-random-{i:08d}")
    assert lookup.remembered == 100
    assert await lookup.find(store, snap, "egw-random-00000999") is None  # the newest are kept
    assert store.digest_reads == 1_000
    await lookup.find(store, snap, "egw-random-00000000")  # the oldest was forgotten: read again
    assert store.digest_reads == 1_001
    clock.advance(1.01)
    await lookup.find(store, snap, "egw-another-0000")  # everything older than the TTL goes
    assert lookup.remembered == 1


async def test_the_digest_document_is_the_key_document() -> None:
    store, snap = CountingStore(), snapshot()
    created = await create_key(store, snap, KeyCreate(name="changing"))
    raw = await store.get_doc(KEYS, str(created["id"]))
    assert raw is not None
    doc = KeyDoc.model_validate_json(raw)
    assert await store.get_doc(KEY_DIGESTS, doc.digest) == raw
