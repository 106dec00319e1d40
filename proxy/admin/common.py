"""What every admin module shares: the gateway handle, JSON answers, query parsing, pagination, and
the ``@operation`` description the OpenAPI document is built from."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from aiohttp import web
from multidict import MultiMapping

from proxy.errors import GatewayError, InvalidRequest
from proxy.gateway import GATEWAY, Gateway


class AdminAuthRequired(GatewayError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_admin_token"


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


@dataclass(frozen=True, slots=True)
class Operation:
    """What the OpenAPI document says about one admin handler (see ``proxy.admin.openapi``)."""

    summary: str
    body: type[Any] | None = None  # a pydantic model or a dataclass
    response: type[Any] | None = None
    query: tuple[tuple[str, str, str], ...] = ()  # (name, JSON type, description)
    status: int = 200
    tag: str = "admin"


H = TypeVar("H", bound=Callable[..., Awaitable[web.StreamResponse]])


def operation(
    summary: str,
    *,
    body: type[Any] | None = None,
    response: type[Any] | None = None,
    query: tuple[tuple[str, str, str], ...] = (),
    status: int = 200,
    tag: str = "admin",
) -> Callable[[H], H]:
    """Describe an admin handler for the OpenAPI document; the document is built from these, so it
    cannot drift from the routes actually registered."""

    def mark(handler: H) -> H:
        setattr(handler, "__openapi__", Operation(summary, body, response, query, status, tag))  # noqa: B010
        return handler

    return mark
