"""Finds plugin classes by the name a provider's ``plugin:`` gives.

Lookup order: an entry point of the ``efflux_gateway.plugins`` group with that name (third parties), then
``package.module:Class`` (a plugin that is not installed as a distribution), then the built-in module
``plugins.<name>`` and its ``Plugin``. The host never imports a plugin by name anywhere else.
"""

from __future__ import annotations

import importlib
import re
from functools import cache
from importlib.metadata import entry_points

from proxy.plugin import Provider

ENTRY_POINT_GROUP = "efflux_gateway.plugins"
_BUILTIN = re.compile(r"^[a-z][a-z0-9_]*$")


class PluginNotFound(LookupError):
    pass


@cache
def load_plugin(spec: str) -> type[Provider]:
    found: object = None
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == spec:
            found = ep.load()
            break
    if found is None and ":" in spec:
        module_name, _, attr = spec.partition(":")
        try:
            found = getattr(importlib.import_module(module_name), attr, None)
        except ImportError as exc:
            raise PluginNotFound(f"cannot import {module_name!r} ({exc})") from None
    if found is None and _BUILTIN.match(spec):
        try:
            found = getattr(importlib.import_module(f"plugins.{spec}"), "Plugin", None)
        except ModuleNotFoundError as exc:
            if exc.name != f"plugins.{spec}":
                raise
    if found is None:
        raise PluginNotFound(f"unknown plugin {spec!r} (built-ins: {', '.join(builtin_names())})")
    if not (isinstance(found, type) and issubclass(found, Provider)):
        raise PluginNotFound(f"{spec!r} is not a provider plugin (a subclass of proxy.plugin.Provider)")
    return found


def builtin_names() -> list[str]:
    import pkgutil

    import plugins

    return sorted(m.name for m in pkgutil.iter_modules(plugins.__path__) if not m.name.startswith("_"))
