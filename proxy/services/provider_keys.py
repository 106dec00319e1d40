"""Tenants' own provider keys (BYOK): store, read, delete and validate them.

A key goes into the vault (:mod:`proxy.tenancy.vault`) and is never answered back: its info says when it
was set, whether it validated and the id of the master key that seals it. Each write holds the key's
lock, which ``efflux-gateway vault rewrap`` takes too. Shared by the admin API (any tenant) and the
self-service API ``/me/provider-keys`` (the caller's tenant only). A key that could not be sent in an
HTTP header (CR/LF, whitespace, non-ASCII, too short or long) is refused by :class:`ProviderKeyPut`, a
400 naming ``api_key`` (:func:`proxy.tenancy.credentials.check_provider_key`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field

from proxy.errors import GatewayError, InvalidRequest, NotFound
from proxy.gateway import Gateway
from proxy.services import refresh
from proxy.services.keys import StrictBody
from proxy.tenancy.credentials import MAX_KEY_LENGTH, MIN_KEY_LENGTH, check_provider_key
from proxy.tenancy.documents import (
    API_WRITER,
    LOCK_TTL,
    PROVIDER_KEYS,
    RELEASE,
    ProviderKeyDoc,
    load,
    lock_name,
    provider_key_id,
    split_provider_key_id,
)
from proxy.tenancy.vault import Vault, VaultNotConfigured

VALIDATE_TIMEOUT = 10.0


class VaultBusy(GatewayError):
    status = 503
    type = "server_error"
    code = "vault_busy"


class ProviderKeyPut(StrictBody):
    api_key: Annotated[
        str,
        Field(min_length=MIN_KEY_LENGTH, max_length=MAX_KEY_LENGTH),
        AfterValidator(check_provider_key),
    ]
    validate_key: bool = Field(default=False, alias="validate")


class ProviderKeyInfo(BaseModel):
    tenant: str
    provider: str
    kid: str  # the master key that seals it (see proxy.tenancy.vault)
    created_at: float
    updated_at: float
    validated: bool | None
    validated_at: float | None


class Validation(BaseModel):
    tenant: str
    provider: str
    valid: bool | None  # None: the provider could not say (unreachable, or an error other than 401/403)
    error: str | None


class Deleted(BaseModel):
    deleted: bool


def provider_of(gw: Gateway, provider: str) -> str:
    """``provider`` if it exists and takes tenants' own keys."""
    config = gw.snapshot.settings.providers.get(provider)
    if config is None or provider not in gw.snapshot.providers:
        raise NotFound(f"No provider '{provider}'.")
    if config.byok == "never":
        raise InvalidRequest(f"The provider '{provider}' does not take tenants' own keys (byok: never).")
    return provider


async def validate_with(gw: Gateway, provider: str, api_key: str) -> tuple[bool | None, str | None]:
    """Ask the provider (a cheap authenticated call). The key never appears in the error text."""
    instance = gw.snapshot.providers[provider]
    try:
        async with asyncio.timeout(VALIDATE_TIMEOUT):
            return await instance.validate_key(gw.http, api_key), None
    except NotImplementedError:
        return None, "this provider's plugin cannot validate keys"
    except Exception as exc:  # network errors, 5xx, plugin failures: the validity is unknown
        return None, f"the provider could not be asked ({type(exc).__name__})"


async def _locked(gw: Gateway, tenant: str, provider: str) -> None:
    # Wait out a rewrap holding this key (it holds the lock for one read-modify-write).
    for _ in range(int(LOCK_TTL / 0.05) + 1):
        if await gw.store.try_lock(lock_name(tenant, provider), API_WRITER, LOCK_TTL):
            return
        await asyncio.sleep(0.05)
    raise VaultBusy("The vault is being rewrapped; retry shortly.", retry_after=1.0)


async def put_provider_key(
    gw: Gateway, tenant: str, provider: str, body: ProviderKeyPut
) -> dict[str, object]:
    provider_of(gw, provider)
    validated: bool | None = None
    validated_at: float | None = None
    if body.validate_key:
        validated, error = await validate_with(gw, provider, body.api_key)
        validated_at = time.time()
        if validated is False:
            raise InvalidRequest(f"The provider '{provider}' refused this key; it was not stored.")
        if validated is None:
            raise InvalidRequest(f"The key could not be validated ({error}); it was not stored.")
    vault = Vault.from_settings(gw.snapshot.settings)
    try:
        sealed = vault.seal(tenant, provider, body.api_key)
    except VaultNotConfigured:
        raise InvalidRequest("The vault is not configured: set secrets.master_keys first.") from None
    doc_id = provider_key_id(tenant, provider)
    await _locked(gw, tenant, provider)
    old = await load(gw.store, PROVIDER_KEYS, doc_id, ProviderKeyDoc)
    doc = ProviderKeyDoc.of(
        sealed, old.created_at if old else None, validated=validated, validated_at=validated_at
    )
    await gw.store.put_doc(PROVIDER_KEYS, doc_id, doc.model_dump_json().encode())
    await gw.store.try_lock(lock_name(tenant, provider), API_WRITER, RELEASE)
    await refresh(gw)
    return key_info(tenant, provider, doc)


def key_info(tenant: str, provider: str, doc: ProviderKeyDoc) -> dict[str, object]:
    return ProviderKeyInfo(tenant=tenant, provider=provider, **doc.model_dump(exclude={"blob"})).model_dump()


async def get_provider_key(gw: Gateway, tenant: str, provider: str) -> ProviderKeyDoc:
    doc_id = provider_key_id(tenant, provider)
    doc = await load(gw.store, PROVIDER_KEYS, doc_id, ProviderKeyDoc)
    if doc is None:
        raise NotFound(f"No key of tenant '{tenant}' for provider '{provider}'.")
    return doc


async def provider_key_info(gw: Gateway, tenant: str, provider: str) -> dict[str, object]:
    return key_info(tenant, provider, await get_provider_key(gw, tenant, provider))


async def tenant_provider_keys(gw: Gateway, tenant: str) -> list[dict[str, object]]:
    """The info of every provider key ``tenant`` has, by provider."""
    rows = []
    for doc_id in sorted(await gw.store.list_docs(PROVIDER_KEYS)):
        owner, provider = split_provider_key_id(doc_id)
        if owner == tenant:
            rows.append(await provider_key_info(gw, owner, provider))
    return rows


async def delete_provider_key(gw: Gateway, tenant: str, provider: str) -> dict[str, object]:
    await _locked(gw, tenant, provider)
    existed = await gw.store.delete_doc(PROVIDER_KEYS, provider_key_id(tenant, provider))
    await gw.store.try_lock(lock_name(tenant, provider), API_WRITER, RELEASE)
    if not existed:
        raise NotFound(f"No key of tenant '{tenant}' for provider '{provider}'.")
    await refresh(gw)
    return {"deleted": True}


async def validate_stored(gw: Gateway, tenant: str, provider: str) -> dict[str, object]:
    """Check a stored key against its provider, and note the result on the key's document."""
    doc = await get_provider_key(gw, tenant, provider)
    provider_of(gw, provider)
    secret = gw.snapshot.tenant_provider_keys.get((tenant, provider))
    if secret is None:  # stored but not decryptable here (a master key missing from the config)
        return Validation(
            tenant=tenant, provider=provider, valid=None, error="the key cannot be decrypted"
        ).model_dump()
    valid, error = await validate_with(gw, provider, secret)
    if valid is not None:
        await _locked(gw, tenant, provider)
        doc = await get_provider_key(gw, tenant, provider)  # re-read under the lock: a rewrap may have run
        doc = doc.model_copy(update={"validated": valid, "validated_at": time.time()})
        await gw.store.put_doc(
            PROVIDER_KEYS, provider_key_id(tenant, provider), doc.model_dump_json().encode()
        )
        await gw.store.try_lock(lock_name(tenant, provider), API_WRITER, RELEASE)
    return Validation(tenant=tenant, provider=provider, valid=valid, error=error).model_dump()
