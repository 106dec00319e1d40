"""A virtual key the snapshot does not know yet: looked up in the store by its digest.

A key created through the API (or the CLI) is in the store at once, but it reaches another replica's
snapshot only with that replica's next refresh of the layers (:mod:`proxy.state.live`). So a secret the
snapshot's key ring misses is looked up by its digest: one read of the ``key_digests`` document that
:mod:`proxy.services.keys` writes beside the key's own, and the key is admitted when it is found and
valid. The very next request after a key's creation thus works on every replica.

A found key is not kept here: the ring has it after the next refresh, and until then every request reads
the store again. A revocation (both documents deleted) therefore holds on every replica as soon as it
holds in the store, and everywhere through the ring within the refresh interval.

Unknown secrets must not cost one store read each:

- a digest the store does not hold is remembered for ``NEGATIVE_TTL`` seconds (at most ``NEGATIVE_SIZE``
  digests, the oldest forgotten first), so a client retrying a wrong or revoked key costs one read a
  second;
- reads for misses are rationed (a token bucket of ``READS_PER_SECOND``, up to ``READS_BURST`` at once),
  so a flood of distinct random keys costs at most that many reads a second. Past the ration a miss is
  refused without a read: during such a flood a key created on another replica within the last refresh
  interval may be refused here until the layers have it.

A store that does not answer makes a miss a refusal (the key is not known here), never an error.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable

from proxy.state.snapshot import Snapshot
from proxy.store.base import Store, StoreUnavailable
from proxy.tenancy.documents import KEY_DIGESTS, KeyDoc, parse
from proxy.tenancy.keys import VirtualKey

NEGATIVE_SIZE = 10_000
NEGATIVE_TTL = 1.0  # seconds
READS_PER_SECOND = 50.0
READS_BURST = 50.0


class KeyLookup:
    """Store lookups for the secrets a snapshot's key ring misses; one per running gateway."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        negative_size: int = NEGATIVE_SIZE,
        negative_ttl: float = NEGATIVE_TTL,
        reads_per_second: float = READS_PER_SECOND,
        burst: float = READS_BURST,
    ) -> None:
        self._clock = clock
        self._size = negative_size
        self._ttl = negative_ttl
        self._rate = reads_per_second
        self._burst = burst
        self._tokens = burst
        self._filled_at = clock()
        self._unknown: dict[bytes, float] = {}  # digest -> until when it counts as unknown, oldest first

    @property
    def remembered(self) -> int:
        """How many unknown digests are remembered now (at most ``negative_size``)."""
        return len(self._unknown)

    async def find(self, store: Store, snapshot: Snapshot, secret: str) -> VirtualKey | None:
        """The key of ``secret``: from the snapshot, else from the store; None when neither has it."""
        key = snapshot.keys.lookup(secret)
        if key is None:
            key = await self.stored(store, snapshot, secret)
        return key

    async def stored(self, store: Store, snapshot: Snapshot, secret: str) -> VirtualKey | None:
        """The key of a ``secret`` the snapshot's ring does not hold, if the store has it (one read)."""
        digest = snapshot.keys.digest(secret)
        now = self._clock()
        if self._known_unknown(digest, now) or not self._take_read(now):
            return None
        try:
            raw = await store.get_doc(KEY_DIGESTS, digest.hex())
        except StoreUnavailable:
            return None
        doc = parse(KeyDoc, "digest", raw) if raw is not None else None
        if doc is None or not _valid(doc, digest, snapshot):
            self._remember_unknown(digest, now)
            return None
        return doc.virtual_key()

    def _known_unknown(self, digest: bytes, now: float) -> bool:
        until = self._unknown.get(digest)
        if until is None:
            return False
        if until > now:
            return True
        del self._unknown[digest]
        return False

    def _remember_unknown(self, digest: bytes, now: float) -> None:
        unknown = self._unknown
        unknown.pop(digest, None)  # re-inserted last: the dict stays ordered by expiry
        while unknown:  # drop what has expired, and the oldest past the size bound
            oldest, until = next(iter(unknown.items()))
            if until > now and len(unknown) < self._size:
                break
            del unknown[oldest]
        unknown[digest] = now + self._ttl

    def _take_read(self, now: float) -> bool:
        self._tokens = min(self._burst, self._tokens + (now - self._filled_at) * self._rate)
        self._filled_at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


def _valid(doc: KeyDoc, digest: bytes, snapshot: Snapshot) -> bool:
    """What the keys layer would admit: the digest it was found under, and not a YAML key's name (the
    YAML key keeps it). Another API key of that name can only be one revoked a moment ago: the API refuses
    a name in use, so a key rotated under the same name works at once too."""
    try:
        stored = bytes.fromhex(doc.digest)
    except ValueError:
        return False
    return hmac.compare_digest(stored, digest) and all(k.name != doc.name for k in snapshot.settings.keys)
