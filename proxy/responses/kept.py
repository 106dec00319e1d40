"""The responses the gateway keeps: those it translated from chat with ``store`` on (OpenAI's default).

One store value per response id (``Store.put_response``, gone after ``responses.ttl``): the id of the
virtual key that created it, the Response, and the input items it answered (the whole conversation up to
it: a request with ``previous_response_id`` is sent with that conversation laid before its own input).
Only the key that created a response may read it, continue it or delete it; for any other key it does not
exist (404, the same answer as for an id never seen).
"""

from __future__ import annotations

import logging

import orjson

from proxy.errors import GatewayError, InvalidRequest, NotFound
from proxy.plugin import JSONObject
from proxy.responses.reply import new_id
from proxy.store.base import Store, StoreUnavailable
from proxy.tenancy.keys import VirtualKey

log = logging.getLogger("efflux.responses")


class PreviousResponseNotFound(InvalidRequest):
    status = 404
    code = "previous_response_not_found"


class KeptUnavailable(GatewayError):
    status = 503
    type = "server_error"
    code = "store_unavailable"


def _unavailable() -> KeptUnavailable:
    return KeptUnavailable(
        "The gateway's store does not answer, so kept responses cannot be read or changed. Retry shortly.",
        retry_after=1.0,
    )


def document(key: VirtualKey, response: JSONObject, items: list[JSONObject]) -> bytes:
    """The value kept; every input item gets an id (listing pages by them), the client's own if it had one."""
    named = [item if "id" in item else {"id": new_id("item"), **item} for item in items]
    return orjson.dumps({"key": key.id, "response": response, "input": named})


async def find(store: Store, response_id: str, key: VirtualKey) -> JSONObject | None:
    """The kept document of ``response_id`` if ``key`` created it, else None."""
    try:
        raw = await store.get_response(response_id)
    except StoreUnavailable:
        raise _unavailable() from None
    if raw is None:
        return None
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict) or doc.get("key") != key.id:
        return None
    return doc


async def get(store: Store, response_id: str, key: VirtualKey) -> JSONObject:
    doc = await find(store, response_id, key)
    if doc is None:
        raise NotFound(
            f"No response with id '{response_id}' is kept for this key. The gateway keeps the responses "
            "it served through a chat model (with store on); a provider's own responses stay with it.",
            param="response_id",
        )
    return doc


async def forget(store: Store, response_id: str) -> None:
    try:
        await store.delete_response(response_id)
    except StoreUnavailable:
        raise _unavailable() from None


async def keep(
    store: Store, key: VirtualKey, response: JSONObject, items: list[JSONObject], ttl: float
) -> None:
    """Keep a finished response. The client already has its answer: a store that does not answer costs
    only the response's later retrieval, so it is logged, not raised."""
    try:
        await store.put_response(str(response["id"]), document(key, response, items), ttl)
    except StoreUnavailable:
        log.warning(
            "a response could not be kept (the store does not answer)",
            extra={"fields": {"msg": "response not kept", "response_id": response["id"]}},
        )
