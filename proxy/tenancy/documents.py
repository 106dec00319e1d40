"""Tenancy state written at run time: virtual keys, tenant settings and tenants' own provider keys.

Each is a kind of store document (shared by every replica) and a *layer* (``proxy.state.live``) that folds
those documents into the serving snapshot:

======================  =====================  =============================================================
kind                    document id            document
======================  =====================  =============================================================
``keys``                ``key_<hex>``          :class:`KeyDoc`: the HMAC digest, never the secret
``key_digests``         the digest (hex)       the same :class:`KeyDoc`, found by digest (no layer: read
                                               one at a time by :mod:`proxy.tenancy.lookup`)
``tenants``             tenant name            :class:`TenantDoc`: budget, limits, alerts over the YAML
``provider_keys``       ``<tenant>/<prov.>``   :class:`ProviderKeyDoc`: a vault blob and its master key id
======================  =====================  =============================================================

A provider key's tenant and provider are read from the document *id*, not its body, and bound into the
ciphertext's associated data: a document copied under another id does not decrypt (``proxy.tenancy.vault``).
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import re
import time
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from proxy.config import AlertsConfig, BudgetConfig, LimitsConfig, TenantConfig
from proxy.state.live import Layer
from proxy.state.snapshot import Snapshot, tenant_scope
from proxy.store.base import Store
from proxy.tenancy.credentials import credential_id
from proxy.tenancy.keys import VirtualKey, make_key
from proxy.tenancy.vault import Sealed, Vault, VaultError

log = logging.getLogger("efflux.tenancy")

KEYS = "keys"
KEY_DIGESTS = "key_digests"  # each API key's document again, under its digest: a lookup is one read
TENANTS = "tenants"
PROVIDER_KEYS = "provider_keys"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # tenant, key and provider names


class _Doc(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


_DocT = TypeVar("_DocT", bound=_Doc)


class KeyDoc(_Doc):
    id: str
    name: str
    tenant: str
    digest: str  # hex HMAC-SHA256 of the secret under secrets.key_secret
    models: list[str] = ["*"]
    limits: LimitsConfig = LimitsConfig()
    budget: BudgetConfig | None = None
    created_at: float = 0.0

    def virtual_key(self) -> VirtualKey:
        return make_key(self.id, self.name, self.tenant, self.models, self.limits, self.budget)


class TenantDoc(_Doc):
    """Fields set here replace the YAML tenant's; fields left out keep the YAML value."""

    budget: BudgetConfig | None = None
    limits: LimitsConfig | None = None
    alerts: AlertsConfig | None = None


class ProviderKeyDoc(_Doc):
    kid: str
    blob: str  # urlsafe base64 of nonce || ciphertext
    created_at: float
    updated_at: float
    validated: bool | None = None
    validated_at: float | None = None

    def sealed(self) -> Sealed:
        return Sealed(self.kid, base64.urlsafe_b64decode(self.blob))

    @classmethod
    def of(cls, sealed: Sealed, created_at: float | None = None, **extra: object) -> ProviderKeyDoc:
        now = time.time()
        blob = base64.urlsafe_b64encode(sealed.blob).decode()
        return cls.model_validate(
            {"kid": sealed.kid, "blob": blob, "created_at": created_at or now, "updated_at": now, **extra}
        )


def provider_key_id(tenant: str, provider: str) -> str:
    return f"{tenant}/{provider}"


def split_provider_key_id(doc_id: str) -> tuple[str, str]:
    tenant, _, provider = doc_id.partition("/")
    return tenant, provider


def effective_tenant(snapshot: Snapshot, name: str, doc: TenantDoc | None) -> TenantConfig:
    base = snapshot.settings.tenants.get(name) or TenantConfig()
    if doc is None:
        return base
    return TenantConfig(
        budget=doc.budget if doc.budget is not None else base.budget,
        limits=doc.limits if doc.limits is not None else base.limits,
        alerts=doc.alerts if doc.alerts is not None else base.alerts,
    )


def parse(model: type[_DocT], doc_id: str, raw: bytes) -> _DocT | None:
    try:
        return model.model_validate_json(raw)
    except ValidationError:
        log.warning("skipping an unreadable %s document", model.__name__, extra={"doc": doc_id})
        return None


async def load(store: Store, kind: str, doc_id: str, model: type[_DocT]) -> _DocT | None:
    """A stored document parsed as ``model``; None when there is none (or it cannot be read)."""
    raw = await store.get_doc(kind, doc_id)
    return parse(model, doc_id, raw) if raw is not None else None


# -- the layers: pure (snapshot, documents) -> snapshot ---------------------------------------------


def keys_layer(snapshot: Snapshot, docs: dict[str, bytes]) -> Snapshot:
    entries = []
    taken = {key.name for key in snapshot.keys.virtual_keys()}
    for doc_id, raw in sorted(docs.items()):
        doc = parse(KeyDoc, doc_id, raw)
        if doc is None or doc.name in taken:  # a YAML key keeps its name (limits and ledger use it)
            continue
        try:
            digest = bytes.fromhex(doc.digest)
        except ValueError:
            continue
        taken.add(doc.name)
        entries.append((digest, doc.virtual_key()))
    return dataclasses.replace(snapshot, keys=snapshot.keys.with_digests(entries))


def tenants_layer(snapshot: Snapshot, docs: dict[str, bytes]) -> Snapshot:
    scopes = dict(snapshot.tenant_scopes)
    for name, raw in docs.items():
        doc = parse(TenantDoc, name, raw)
        if doc is not None:
            scopes[name] = tenant_scope(name, effective_tenant(snapshot, name, doc))
    return dataclasses.replace(snapshot, tenant_scopes=scopes)


def provider_keys_layer(snapshot: Snapshot, docs: dict[str, bytes]) -> Snapshot:
    if not docs:
        return snapshot
    vault = Vault.from_settings(snapshot.settings)
    keys = dict(snapshot.tenant_provider_keys)
    credentials = dict(snapshot.tenant_credentials)
    for doc_id, raw in docs.items():
        tenant, provider = split_provider_key_id(doc_id)
        doc = parse(ProviderKeyDoc, doc_id, raw)
        if doc is None:
            continue
        try:
            secret = keys[(tenant, provider)] = vault.open(tenant, provider, doc.sealed())
            credentials[(tenant, provider)] = credential_id(tenant, secret)
        except (VaultError, ValueError) as exc:
            # Names and the master key id only: the blob and the key never reach a log line.
            log.error(
                "a tenant's provider key cannot be decrypted",
                extra={"fields": {"msg": "vault", "tenant": tenant, "provider": provider, "error": str(exc)}},
            )
    return dataclasses.replace(snapshot, tenant_provider_keys=keys, tenant_credentials=credentials)


LAYERS: list[tuple[str, Layer]] = [
    (KEYS, keys_layer),
    (TENANTS, tenants_layer),
    (PROVIDER_KEYS, provider_keys_layer),
]


# -- writes shared by the admin API, /me and the CLI ------------------------------------------------

# Rewrap and API writes of one provider key exclude each other with a named lock, so a rewrap can never
# write back an old secret over a newer one. Writers of the API share one owner: among themselves the
# last write wins, as for any PUT.
LOCK_TTL = 2.0
RELEASE = 0.005  # the store has no unlock: re-taking the lock for 5 ms lets it lapse at once
API_WRITER = "api"


def lock_name(tenant: str, provider: str) -> str:
    return f"vault:{provider_key_id(tenant, provider)}"


async def list_provider_keys(store: Store) -> dict[str, ProviderKeyDoc]:
    out: dict[str, ProviderKeyDoc] = {}
    for doc_id, raw in (await store.list_docs(PROVIDER_KEYS)).items():
        doc = parse(ProviderKeyDoc, doc_id, raw)
        if doc is not None:
            out[doc_id] = doc
    return out
