"""The routing overlay: routes added at run time, a document every replica serves within a second,
resolved after YAML's exact names and before synced models and wildcards. YAML routes are listed
(``source: yaml``) but never changed here: the file is their source of truth (change it and reload).
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel

from proxy.config import ConfigError, TargetConfig
from proxy.errors import InvalidRequest, NotFound
from proxy.gateway import Gateway
from proxy.routing.table import Route
from proxy.services import refresh
from proxy.state.overlay import ROUTES, validate_route
from proxy.state.snapshot import Snapshot


class RouteBody(BaseModel):
    targets: list[TargetConfig]


class RouteModel(BaseModel):
    model: str
    source: str  # "yaml" | "overlay"
    targets: list[TargetConfig]


class RouteList(BaseModel):
    data: list[RouteModel]
    next_cursor: str | None


def route_json(route: Route, source: str) -> dict[str, object]:
    return {
        "model": route.name,
        "source": source,
        "targets": [
            {"provider": t.provider, "model": t.model, "priority": t.priority, "weight": t.weight}
            for t in route.targets
        ],
    }


def list_routes(snapshot: Snapshot) -> dict[str, object]:
    """YAML's routes, then the overlay's (as every replica serves it)."""
    data = [route_json(r, "yaml") for r in snapshot.routing.exact.values()]
    data += [route_json(r, "yaml") for r in snapshot.routing.patterns]
    data += [
        route_json(r, "overlay") for name, r in snapshot.overlay.items() if name not in snapshot.routing.exact
    ]
    return {"data": data, "next_cursor": None}


async def put_route(gw: Gateway, model: str, body: Mapping[str, object]) -> dict[str, object]:
    """Add or replace an overlay route, validated like a YAML route."""
    if model in gw.snapshot.routing.exact:
        raise InvalidRequest(
            f"'{model}' is routed in the YAML config, which wins over the overlay: change it there, reload.",
            param="model",
        )
    try:
        config = validate_route(model, body, gw.snapshot.providers)
    except ConfigError as exc:
        first = str(exc).splitlines()[0]
        raise InvalidRequest(f"Invalid route: {exc}", param=first.split(":", 1)[0]) from None
    await gw.store.put_doc(ROUTES, model, config.model_dump_json(exclude_none=True).encode())
    await refresh(gw)  # this replica serves it before answering; the others within a poll
    route = gw.snapshot.overlay.get(model)
    return route_json(route, "overlay") if route else {"model": model, "source": "overlay"}


async def delete_route(gw: Gateway, model: str) -> None:
    if not await gw.store.delete_doc(ROUTES, model):
        raise NotFound(f"No overlay route for '{model}'.", param="model")
    await refresh(gw)
