"""Virtual keys at run time: ``POST|GET /admin/keys``, ``GET|PATCH|DELETE /admin/keys/{id}``.

A created key's secret is in the ``POST`` answer and nowhere else: the store keeps its HMAC digest
(``proxy.tenancy.documents.KeyDoc``). YAML keys are listed beside API keys (``source: "yaml"``) but are
changed in the config file, not here. Each write refreshes this replica's snapshot before answering; the
others follow within ``Live.interval`` (revocation everywhere within 1 s).
"""

from __future__ import annotations

import secrets
import time
from typing import Annotated, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from proxy.admin.common import gateway, json_response, limit, operation
from proxy.config import BudgetConfig, LimitsConfig
from proxy.errors import InvalidRequest, NotFound
from proxy.gateway import Gateway
from proxy.state.snapshot import Snapshot
from proxy.store.base import Store
from proxy.tenancy.documents import KEYS, NAME, KeyDoc, parse
from proxy.tenancy.keys import new_key_secret

M = TypeVar("M", bound=BaseModel)
Name = Annotated[str, Field(pattern=NAME.pattern)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KeyCreate(_Body):
    name: Name
    tenant: Name = "default"
    models: list[Annotated[str, Field(min_length=1, max_length=200)]] = ["*"]
    limits: LimitsConfig = LimitsConfig()
    budget: BudgetConfig | None = None


class KeyUpdate(_Body):
    """Only the fields sent change; ``budget: null`` removes the budget."""

    models: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = None
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


async def read_model(request: web.Request, model: type[M]) -> M:
    """The JSON body validated by ``model``; a bad body is a 400 naming the field, never a 500."""
    try:
        return model.model_validate_json(await request.read())
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or None
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "json_invalid":
            raise InvalidRequest("The request body is not valid JSON.") from None
        raise InvalidRequest(f"{where or 'body'}: {message}", param=where) from None


async def refresh(gw: Gateway) -> None:
    """This replica serves its own write at once; the others follow on their next poll."""
    if gw.live is not None:
        await gw.live.refresh()


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
    out = {}
    for doc_id, raw in (await store.list_docs(KEYS)).items():
        doc = parse(KeyDoc, doc_id, raw)
        if doc is not None:
            out[doc_id] = doc
    return out


async def load_key(gw: Gateway, key_id: str) -> KeyDoc:
    if key_id.startswith("yaml:") and any(f"yaml:{k.name}" == key_id for k in gw.snapshot.settings.keys):
        raise InvalidRequest("This key is declared in the YAML config: change it there.", param="id")
    raw = await gw.store.get_doc(KEYS, key_id)
    doc = parse(KeyDoc, key_id, raw) if raw is not None else None
    if doc is None:
        raise NotFound(f"No key with id '{key_id}'.")
    return doc


async def create_key(store: Store, snapshot: Snapshot, body: KeyCreate) -> dict[str, object]:
    """Shared by the API and ``efflux-gateway keys create``: the answer holds the secret."""
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
    await store.put_doc(KEYS, doc.id, doc.model_dump_json().encode())
    return {**doc_info(doc), "key": secret}


@operation(
    "Create a virtual key (the secret is shown in this answer only)",
    body=KeyCreate,
    response=CreatedKey,
    status=201,
    tag="keys",
)
async def create(request: web.Request) -> web.Response:
    body = await read_model(request, KeyCreate)
    gw = gateway(request)
    created = await create_key(gw.store, gw.snapshot, body)
    await refresh(gw)
    return json_response(created, status=201)


@operation(
    "Virtual keys from YAML and the API, by id",
    response=KeyPage,
    query=(
        ("tenant", "string", "only this tenant's keys"),
        ("limit", "integer", "1..1000, default 100"),
        ("cursor", "string", "next_cursor of the previous page"),
    ),
    tag="keys",
)
async def list_keys(request: web.Request) -> web.Response:
    gw = gateway(request)
    count = limit(request.query)
    cursor = request.query.get("cursor") or ""
    tenant = request.query.get("tenant") or None
    rows = yaml_info(gw) + [doc_info(d) for d in (await api_keys(gw.store)).values()]
    rows = sorted((r for r in rows if tenant is None or r["tenant"] == tenant), key=lambda r: str(r["id"]))
    rows = [r for r in rows if str(r["id"]) > cursor]
    page = rows[:count]
    more = len(rows) > count
    return json_response({"data": page, "next_cursor": str(page[-1]["id"]) if more else None})


@operation("One virtual key (never its secret)", response=KeyInfo, tag="keys")
async def get_key(request: web.Request) -> web.Response:
    gw = gateway(request)
    key_id = request.match_info["id"]
    for row in yaml_info(gw):
        if row["id"] == key_id:
            return json_response(row)
    return json_response(doc_info(await load_key(gw, key_id)))


@operation("Change a key's models, limits or budget", body=KeyUpdate, response=KeyInfo, tag="keys")
async def update(request: web.Request) -> web.Response:
    gw = gateway(request)
    doc = await load_key(gw, request.match_info["id"])
    body = await read_model(request, KeyUpdate)
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    doc = doc.model_copy(update=changes)
    await gw.store.put_doc(KEYS, doc.id, doc.model_dump_json().encode())
    await refresh(gw)
    return json_response(doc_info(doc))


@operation("Revoke a key (effective on every replica within 1 s)", response=Revoked, tag="keys")
async def revoke(request: web.Request) -> web.Response:
    gw = gateway(request)
    doc = await load_key(gw, request.match_info["id"])
    await gw.store.delete_doc(KEYS, doc.id)
    await refresh(gw)
    return json_response({"id": doc.id, "revoked": True})


def register(router: web.UrlDispatcher) -> None:
    router.add_post("/keys", create)
    router.add_get("/keys", list_keys)
    router.add_get("/keys/{id}", get_key)
    router.add_patch("/keys/{id}", update)
    router.add_delete("/keys/{id}", revoke)
