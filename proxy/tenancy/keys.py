"""Virtual keys: who is calling, what they may use, and their limits.

Secrets are never kept: a key is held as HMAC-SHA256(server secret, key) and looked up by that digest,
then compared with ``hmac.compare_digest``. Missing, malformed, unknown and revoked keys all get the same
401 body (see :mod:`proxy.errors`), so the answer tells an attacker nothing.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from proxy.config import BudgetConfig, KeyConfig, LimitsConfig, Period, Settings
from proxy.metering.pricing import usd_to_micro
from proxy.store.base import Scope

KEY_PREFIX = "egw-"


@dataclass(frozen=True, slots=True)
class VirtualKey:
    id: str
    name: str
    tenant: str
    models: tuple[str, ...]
    rpm: int | None
    tpm: int | None
    budget_micro_usd: int | None
    period: Period

    def scope(self, alert_at: tuple[float, ...]) -> Scope:
        return _scope(self, alert_at)


@functools.lru_cache(maxsize=65536)
def _scope(key: VirtualKey, alert_at: tuple[float, ...]) -> Scope:
    """Keys and scopes are immutable: build each key's scope once, not on every request."""
    return Scope("key", key.name, key.tenant, key.rpm, key.tpm, key.budget_micro_usd, key.period, alert_at)


def new_key_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


# Without ``secrets.key_secret`` every snapshot of this process digests with this one random secret, so
# keys created through the API survive a reload (not a restart: that is what key_secret is for).
_PROCESS_SECRET = secrets.token_bytes(32)


def process_secret() -> bytes:
    return _PROCESS_SECRET


class KeyRing:
    """The digest index of every virtual key known to this config snapshot."""

    def __init__(self, server_secret: bytes, keys: Iterable[tuple[str, VirtualKey]] = ()) -> None:
        self._secret = server_secret
        # Keyed once: each digest copies this state instead of setting the key up again (a third cheaper).
        self._keyed = hmac.new(server_secret, digestmod=hashlib.sha256)
        self._by_digest: dict[bytes, tuple[bytes, VirtualKey]] = {}
        for secret, key in keys:
            self.add(self.digest(secret), key)

    def digest(self, secret: str) -> bytes:
        mac = self._keyed.copy()
        mac.update(secret.encode("utf-8", "surrogateescape"))
        return mac.digest()

    def add(self, digest: bytes, key: VirtualKey) -> None:
        self._by_digest[digest] = (digest, key)

    def lookup(self, secret: str) -> VirtualKey | None:
        digest = self.digest(secret)
        found = self._by_digest.get(digest)
        if found is None:
            return None
        # The hash lookup found a candidate; the decision itself is a constant-time comparison.
        stored, key = found
        return key if hmac.compare_digest(stored, digest) else None

    def __len__(self) -> int:
        return len(self._by_digest)

    def with_digests(self, entries: Iterable[tuple[bytes, VirtualKey]]) -> KeyRing:
        """A new ring: this one's keys plus ``entries`` (keys created through the API, already digested
        under the same secret). The receiver is left unchanged: snapshots share it."""
        ring = KeyRing(self._secret)
        ring._by_digest = dict(self._by_digest)
        for digest, key in entries:
            ring.add(digest, key)
        return ring

    def virtual_keys(self) -> list[VirtualKey]:
        return [key for _, key in self._by_digest.values()]


def make_key(
    id: str, name: str, tenant: str, models: Iterable[str], limits: LimitsConfig, budget: BudgetConfig | None
) -> VirtualKey:
    """A virtual key from its settings, whether they come from YAML or from the admin API."""
    return VirtualKey(
        id=id,
        name=name,
        tenant=tenant,
        models=tuple(models),
        rpm=limits.rpm,
        tpm=limits.tpm,
        budget_micro_usd=usd_to_micro(budget.usd) if budget else None,
        period=budget.period if budget else Period.MONTHLY,
    )


def key_from_config(config: KeyConfig) -> VirtualKey:
    return make_key(
        f"yaml:{config.name}", config.name, config.tenant, config.models, config.limits, config.budget
    )


def build_keyring(settings: Settings, server_secret: bytes) -> KeyRing:
    return KeyRing(server_secret, ((k.key, key_from_config(k)) for k in settings.keys))
