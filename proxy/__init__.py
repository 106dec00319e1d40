"""efflux-gateway: an OpenAI-compatible LLM gateway.

Library use: ``proxy.create_app(settings) -> aiohttp.web.Application``, with settings from
``proxy.load_settings(path)`` or ``proxy.parse_settings(mapping)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["create_app", "load_settings", "parse_settings"]

if TYPE_CHECKING:
    from proxy.app import create_app
    from proxy.config import load_settings, parse_settings


def __getattr__(name: str) -> Any:
    # Lazy, so that plugins importing proxy.plugin do not pull in the whole server.
    if name == "create_app":
        from proxy.app import create_app

        return create_app
    if name in ("load_settings", "parse_settings"):
        from proxy import config

        return getattr(config, name)
    raise AttributeError(name)
