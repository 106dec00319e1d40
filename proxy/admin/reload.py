"""``POST /admin/reload``: load the config file again and swap it in (see :mod:`proxy.services.reload`)."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel

from proxy.admin.openapi import operation
from proxy.config import ConfigError
from proxy.edge.http import json_response
from proxy.errors import InvalidRequest
from proxy.services.reload import RELOADER


class ReloadModel(BaseModel):
    status: str  # "reloaded" | "unchanged"
    version: int
    digest: str
    restart_required: list[str]


class ConfigRejected(InvalidRequest):
    code = "config_invalid"


@operation(
    "Reload the config file; a bad file is rejected and the old config keeps serving",
    response=ReloadModel,
    tag="config",
)
async def reload_config(request: web.Request) -> web.Response:
    reloader = request.config_dict.get(RELOADER)
    if reloader is None:
        raise InvalidRequest("This gateway was started without a config file, so there is nothing to reload.")
    try:
        outcome = await reloader.reload("admin API")
    except ConfigError as exc:
        lines = str(exc).splitlines()
        raise ConfigRejected(
            f"The config was not reloaded, the old config keeps serving: {'; '.join(lines)}",
            param=lines[0].split(":", 1)[0] if lines else None,
        ) from None
    return json_response(outcome.as_json())


def register(router: web.UrlDispatcher) -> None:
    router.add_post("/reload", reload_config)
