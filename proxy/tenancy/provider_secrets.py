"""An operator's provider key pasted into the console: sealed in the vault, never stored in clear, never
shown again.

The sealed key is a document of its own kind (``provider_secrets``, id: the provider's name) in the shape
of a tenant's own key (:class:`proxy.tenancy.documents.ProviderKeyDoc`), sealed for the pair
``("", provider)`` (no tenant has an empty name, so it can never open as a tenant's key). ``vault rewrap``
re-seals it with the tenants' keys. Its layer runs after the run-time providers: the provider's instance
gets the key (its config keeps none, so no config dump can show it); the key replaces a ``${VAR}`` key
until the operator gives a ``${VAR}`` again or drops the provider's run-time fields.
"""

from __future__ import annotations

import dataclasses
import logging

from proxy.state.overlay import instantiate
from proxy.state.snapshot import Snapshot
from proxy.store.base import Store
from proxy.tenancy.documents import ProviderKeyDoc, parse
from proxy.tenancy.vault import Vault, VaultError

KIND = "provider_secrets"
OPERATOR = ""  # the "tenant" the operator's keys are sealed for
log = logging.getLogger("efflux.vault")


async def store_secret(store: Store, vault: Vault, provider: str, secret: str) -> None:
    """Seal ``secret`` for ``provider`` and store it (VaultNotConfigured without master keys)."""
    sealed = vault.seal(OPERATOR, provider, secret)
    await store.put_doc(KIND, provider, ProviderKeyDoc.of(sealed).model_dump_json().encode())


async def has_secret(store: Store, provider: str) -> bool:
    return await store.get_doc(KIND, provider) is not None


async def drop_secret(store: Store, provider: str) -> bool:
    return await store.delete_doc(KIND, provider)


def provider_secrets_layer(snapshot: Snapshot, docs: dict[str, bytes]) -> Snapshot:
    if not docs:
        return snapshot
    vault = Vault.from_settings(snapshot.settings)
    instances = dict(snapshot.providers)
    for name, raw in sorted(docs.items()):
        doc = parse(ProviderKeyDoc, name, raw)
        config = snapshot.settings.providers.get(name)
        if doc is None or config is None or name not in instances:
            continue
        try:
            secret = vault.open(OPERATOR, name, doc.sealed())
        except (VaultError, ValueError) as exc:
            # The provider's name and the error only: never the blob, never the key.
            log.error(
                "a provider key pasted in the console cannot be decrypted",
                extra={"fields": {"msg": "vault", "provider": name, "error": str(exc)}},
            )
            continue
        instances[name] = instantiate(name, config.model_copy(update={"api_key": secret}))
    return dataclasses.replace(snapshot, providers=instances)
