"""What the HTTP handlers of ``/admin``, ``/me`` and the dashboard share: the gateway handle, JSON
answers, a JSON body (plain or validated by a pydantic model) and numbers from the query string.

A bad body or query is a 400 (:class:`proxy.errors.InvalidRequest`) naming the field, never a 500.
"""

from __future__ import annotations

from typing import TypeVar

import orjson
from aiohttp import web
from multidict import MultiMapping
from pydantic import BaseModel, ValidationError

from proxy.errors import InvalidRequest
from proxy.gateway import GATEWAY, Gateway

M = TypeVar("M", bound=BaseModel)


def gateway(request: web.Request) -> Gateway:
    return request.config_dict[GATEWAY]


def json_response(data: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


async def json_body(request: web.Request) -> dict[str, object]:
    try:
        data = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise InvalidRequest("The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return data


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


def number(query: MultiMapping[str], name: str) -> float | None:
    value = query.get(name)
    if value in (None, ""):
        return None
    try:
        return float(value)
    except ValueError:
        raise InvalidRequest(f"'{name}' must be a number.", param=name) from None


def limit(query: MultiMapping[str], default: int = 100, most: int = 1000) -> int:
    value = number(query, "limit")
    count = default if value is None else int(value)
    if not 1 <= count <= most:
        raise InvalidRequest(f"'limit' must be between 1 and {most}.", param="limit")
    return count
