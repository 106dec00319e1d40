"""Virtual keys created at run time: create (the secret is answered once), list, read, change, revoke.

The store keeps a key's HMAC digest (:class:`proxy.tenancy.documents.KeyDoc`), never its secret: under
the key's id (``keys``, the layer every replica serves from) and again under the digest (``key_digests``),
so that a replica whose snapshot does not have the key yet finds it in one read
(:mod:`proxy.tenancy.lookup`): a new key works on every replica for the very next request. Keys declared
in the YAML file are listed beside them (``source: "yaml"``) but are changed in the file. Each write
refreshes this replica's snapshot before returning; the others follow within ``Live.interval``
(revocation everywhere within 1 s). Shared by the admin API and ``efflux-gateway keys``.
"""

from __future__ import annotations

import secrets
import time
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from proxy.config import BudgetConfig, LimitsConfig
from proxy.errors import InvalidRequest, NotFound
from proxy.gateway import Gateway
from proxy.services import refresh
from proxy.state.snapshot import Snapshot
from proxy.store.base import Store
from proxy.tenancy.documents import KEY_DIGESTS, KEYS, NAME, KeyDoc, load, parse
from proxy.tenancy.keys import new_key_secret

Name = Annotated[str, Field(pattern=NAME.pattern)]
ModelGlob = Annotated[str, Field(min_length=1, max_length=200)]


class StrictBody(BaseModel):
    """A request body that refuses fields it does not know."""

    model_config = ConfigDict(extra="forbid")


class KeyCreate(StrictBody):
    name: Name
    tenant: Name = "default"
    models: list[ModelGlob] = ["*"]
    limits: LimitsConfig = LimitsConfig()
    budget: BudgetConfig | None = None


class KeyUpdate(StrictBody):
    """Only the fields sent change; ``budget: null`` removes the budget."""

    models: list[ModelGlob] | None = None
    limits: LimitsConfig | None = None
    budget: BudgetConfig | None = None


class KeyInfo(BaseModel):
    id: str
    name: str
    tenant: str
    models: list[str]
    limits: LimitsConfig
    budget: BudgetConfig | None
    source: Literal["api", "yaml"]
    created_at: float | None


class CreatedKey(KeyInfo):
    key: str  # the secret: shown in this answer only


class KeyPage(BaseModel):
    data: list[KeyInfo]
    next_cursor: str | None


class Revoked(BaseModel):
    id: str
    revoked: bool


def yaml_info(gw: Gateway) -> list[dict[str, object]]:
    return [
        KeyInfo(
            id=f"yaml:{k.name}",
            name=k.name,
            tenant=k.tenant,
            models=k.models,
            limits=k.limits,
            budget=k.budget,
            source="yaml",
            created_at=None,
        ).model_dump(mode="json")
        for k in gw.snapshot.settings.keys
    ]


def doc_info(doc: KeyDoc) -> dict[str, object]:
    return KeyInfo(
        id=doc.id,
        name=doc.name,
        tenant=doc.tenant,
        models=doc.models,
        limits=doc.limits,
        budget=doc.budget,
        source="api",
        created_at=doc.created_at,
    ).model_dump(mode="json")


async def api_keys(store: Store) -> dict[str, KeyDoc]:
    """The keys created through the API or the CLI, by id."""
    out = {}
    for doc_id, raw in (await store.list_docs(KEYS)).items():
        doc = parse(KeyDoc, doc_id, raw)
        if doc is not None:
            out[doc_id] = doc
    return out


async def load_key(gw: Gateway, key_id: str) -> KeyDoc:
    """An API key by id; a YAML key is refused (it changes in the file), an unknown id is NotFound."""
    if key_id.startswith("yaml:") and any(f"yaml:{k.name}" == key_id for k in gw.snapshot.settings.keys):
        raise InvalidRequest("This key is declared in the YAML config: change it there.", param="id")
    doc = await load(gw.store, KEYS, key_id, KeyDoc)
    if doc is None:
        raise NotFound(f"No key with id '{key_id}'.")
    return doc


async def create_key(store: Store, snapshot: Snapshot, body: KeyCreate) -> dict[str, object]:
    """A new key; the answer holds the secret (nowhere else does)."""
    existing = await api_keys(store)
    if body.name in {k.name for k in snapshot.settings.keys} | {d.name for d in existing.values()}:
        raise InvalidRequest(f"A key named '{body.name}' exists already.", param="name")
    secret = new_key_secret()
    doc = KeyDoc(
        id="key_" + secrets.token_hex(8),
        name=body.name,
        tenant=body.tenant,
        digest=snapshot.keys.digest(secret).hex(),
        models=body.models,
        limits=body.limits,
        budget=body.budget,
        created_at=time.time(),
    )
    await _put(store, doc)
    return {**doc_info(doc), "key": secret}


async def _put(store: Store, doc: KeyDoc) -> None:
    """The id document first: a digest document never stands for a key the listing does not show."""
    raw = doc.model_dump_json().encode()
    await store.put_doc(KEYS, doc.id, raw)
    await store.put_doc(KEY_DIGESTS, doc.digest, raw)


async def list_keys(gw: Gateway, *, tenant: str | None, cursor: str, count: int) -> dict[str, object]:
    """One page of YAML and API keys by id, after ``cursor``; ``tenant``: only that tenant's."""
    rows = yaml_info(gw) + [doc_info(d) for d in (await api_keys(gw.store)).values()]
    rows = sorted((r for r in rows if tenant is None or r["tenant"] == tenant), key=lambda r: str(r["id"]))
    rows = [r for r in rows if str(r["id"]) > cursor]
    page = rows[:count]
    more = len(rows) > count
    return {"data": page, "next_cursor": str(page[-1]["id"]) if more else None}


async def get_key(gw: Gateway, key_id: str) -> dict[str, object]:
    for row in yaml_info(gw):
        if row["id"] == key_id:
            return row
    return doc_info(await load_key(gw, key_id))


async def update_key(gw: Gateway, doc: KeyDoc, body: KeyUpdate) -> dict[str, object]:
    """``doc`` (from :func:`load_key`) with the fields ``body`` sets."""
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    doc = doc.model_copy(update=changes)
    await _put(gw.store, doc)
    await refresh(gw)
    return doc_info(doc)


async def delete_key(store: Store, key_id: str) -> bool:
    """Whether a key of that id was there to delete. The digest document goes first: once it is gone no
    replica finds the key by lookup, and the layers drop it with the id document."""
    doc = await load(store, KEYS, key_id, KeyDoc)
    if doc is not None:
        await store.delete_doc(KEY_DIGESTS, doc.digest)
    return await store.delete_doc(KEYS, key_id)


async def revoke_key(gw: Gateway, key_id: str) -> dict[str, object]:
    doc = await load_key(gw, key_id)
    await delete_key(gw.store, doc.id)
    await refresh(gw)
    return {"id": doc.id, "revoked": True}
