"""``GET /admin/openapi.json``: built from the routes registered on the admin sub-app and the
``@operation`` description of each handler, with pydantic models for bodies and responses."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web
from pydantic import TypeAdapter

from proxy.edge.http import json_response


@dataclass(frozen=True, slots=True)
class Operation:
    """What the OpenAPI document says about one admin handler."""

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


_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}


def build(app: web.Application, prefix: str = "/admin") -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
    for route in app.router.routes():
        op: Operation | None = getattr(route.handler, "__openapi__", None)
        if op is None or route.method == "HEAD":
            continue
        info = route.resource.get_info() if route.resource is not None else {}
        raw = info.get("path") or info.get("formatter") or ""
        # Mounted with add_subapp, resources already carry the sub-app's prefix; alone, they do not.
        if not raw.startswith(prefix + "/"):
            raw = prefix + raw
        path = _PARAM.sub(lambda m: "{" + m.group(1) + "}", raw)
        params: list[dict[str, Any]] = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _PARAM.findall(raw)
        ]
        params += [
            {"name": name, "in": "query", "required": False, "schema": {"type": kind}, "description": text}
            for name, kind, text in op.query
        ]
        entry: dict[str, Any] = {"summary": op.summary, "tags": [op.tag], "parameters": params}
        responses: dict[str, Any] = {}
        ok: dict[str, Any] = {"description": "OK"}
        if op.response is not None:
            ok["content"] = {"application/json": {"schema": _schema(op.response, schemas)}}
        responses[str(op.status)] = ok
        error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        for status, text in (("400", "Bad request"), ("401", "Missing admin token"), ("404", "Not found")):
            responses[status] = {"description": text, **error}
        entry["responses"] = responses
        if op.body is not None:
            body = {"application/json": {"schema": _schema(op.body, schemas)}}
            entry["requestBody"] = {"required": True, "content": body}
        paths.setdefault(path, {})[route.method.lower()] = entry
    for schema in list(schemas.values()):
        for name, sub in (schema.pop("$defs", None) or {}).items():
            schemas.setdefault(name, sub)
    return {
        "openapi": "3.1.0",
        "info": {"title": "efflux-gateway admin API", "version": "1"},
        "components": {
            "schemas": schemas,
            "securitySchemes": {"admin": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"admin": []}],
        "paths": paths,
    }


def _schema(kind: type[Any], schemas: dict[str, Any]) -> dict[str, str]:
    """A pydantic model or a plain dataclass -> a $ref into components/schemas (its $defs hoisted)."""
    schema = TypeAdapter(kind).json_schema(ref_template="#/components/schemas/{model}")
    schemas[kind.__name__] = schema
    return {"$ref": f"#/components/schemas/{kind.__name__}"}


def register(app: web.Application) -> None:
    async def openapi(request: web.Request) -> web.Response:
        return json_response(build(app))

    app.router.add_get("/openapi.json", openapi)
