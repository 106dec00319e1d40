"""``efflux-gateway vault rewrap``: re-seal every tenant provider key under the vault's current master key.

Safe while gateways serve: each document is re-sealed under its per-document lock, which API writes
(:mod:`proxy.services.provider_keys`) take too, and readers open either master key meanwhile.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field

from proxy.store.base import Store, StoreUnavailable
from proxy.tenancy import provider_secrets
from proxy.tenancy.documents import (
    PROVIDER_KEYS,
    RELEASE,
    ProviderKeyDoc,
    load,
    lock_name,
    split_provider_key_id,
)
from proxy.tenancy.vault import Vault, VaultError

REWRAP_LOCK_TTL = 2.0


@dataclass(slots=True)
class Rewrapped:
    moved: int = 0  # re-sealed under the current master key
    current: int = 0  # already under it
    failures: list[str] = field(default_factory=list)  # "<document id>: cannot be opened (<why>)"


async def _take(store: Store, name: str, owner: str) -> None:
    # An API write holds the lock for one read-modify-write; wait it out (polling: the store has no
    # notification for a lock that lapses).
    for _ in range(1000):
        if await store.try_lock(name, owner, REWRAP_LOCK_TTL):
            return
        await asyncio.sleep(0.05)
    raise StoreUnavailable(f"lock {name} stayed busy")


async def rewrap(store: Store, vault: Vault) -> Rewrapped:
    """Re-seal every provider key with the vault's current master key; closes the store."""
    owner = "rewrap-" + secrets.token_hex(6)
    done = Rewrapped()
    try:
        for doc_id in sorted(await store.list_docs(PROVIDER_KEYS)):
            tenant, provider = split_provider_key_id(doc_id)
            await _take(store, lock_name(tenant, provider), owner)
            # Re-read under the lock: an API write since the listing must not be overwritten.
            doc = await load(store, PROVIDER_KEYS, doc_id, ProviderKeyDoc)
            if doc is None:
                continue
            try:
                sealed = vault.rewrap(tenant, provider, doc.sealed())
            except (VaultError, ValueError) as exc:
                done.failures.append(f"{doc_id}: cannot be opened ({exc})")
                continue
            if sealed is None:
                await store.try_lock(lock_name(tenant, provider), owner, RELEASE)
                done.current += 1
                continue
            new = ProviderKeyDoc.of(
                sealed, doc.created_at, validated=doc.validated, validated_at=doc.validated_at
            )
            await store.put_doc(PROVIDER_KEYS, doc_id, new.model_dump_json().encode())
            await store.try_lock(lock_name(tenant, provider), owner, RELEASE)
            done.moved += 1
        await _rewrap_operator_keys(store, vault, done)
        return done
    finally:
        await store.close()


async def _rewrap_operator_keys(store: Store, vault: Vault, done: Rewrapped) -> None:
    """The provider keys an operator pasted in the console (:mod:`proxy.tenancy.provider_secrets`)."""
    for provider in sorted(await store.list_docs(provider_secrets.KIND)):
        doc = await load(store, provider_secrets.KIND, provider, ProviderKeyDoc)
        if doc is None:
            continue
        try:
            sealed = vault.rewrap(provider_secrets.OPERATOR, provider, doc.sealed())
        except (VaultError, ValueError) as exc:
            done.failures.append(f"{provider_secrets.KIND}/{provider}: cannot be opened ({exc})")
            continue
        if sealed is None:
            done.current += 1
            continue
        new = ProviderKeyDoc.of(sealed, doc.created_at)
        await store.put_doc(provider_secrets.KIND, provider, new.model_dump_json().encode())
        done.moved += 1
