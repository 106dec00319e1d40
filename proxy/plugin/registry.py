"""Finds plugin classes by the name a provider's ``plugin:`` gives.

Lookup order: an entry point of the ``efflux_gateway.plugins`` group with that name (third parties), then
``package.module:Class`` (a plugin that is not installed as a distribution), then the built-in module
``plugins.<name>`` and its ``Plugin``. The host never imports a plugin by name anywhere else.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
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
            try:
                found = ep.load()
            except Exception as exc:  # a broken third-party package: a config error, not a traceback
                raise PluginNotFound(
                    f"cannot load entry point {ep.value!r} ({type(exc).__name__}: {exc})"
                ) from None
            break
    if found is None and ":" in spec:
        module_name, _, attr = spec.partition(":")
        if not module_name or not attr:
            # import_module("") raises ValueError, which escaped as a traceback from ``check``
            raise PluginNotFound(f"{spec!r}: use 'package.module:Class'")
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # ImportError, but also ".rel" (TypeError) or a module that fails to run
            raise PluginNotFound(f"cannot import {module_name!r} ({exc})") from None
        found = getattr(module, attr, None)
        if found is None:
            raise PluginNotFound(f"module {module_name!r} has no attribute {attr!r}")
    if found is None and _BUILTIN.match(spec):
        try:
            found = getattr(importlib.import_module(f"plugins.{spec}"), "Plugin", None)
        except ModuleNotFoundError as exc:
            if exc.name != f"plugins.{spec}":
                # the plugin exists but one of its dependencies is missing: say which
                raise PluginNotFound(f"plugin {spec!r} cannot be imported ({exc})") from None
    if found is None:
        raise PluginNotFound(
            f"unknown plugin {spec!r}{_suggest(spec)} (built-ins: {', '.join(builtin_names())})"
        )
    # An abstract class (the base itself, or a plugin missing a verb) cannot serve: refused here, at load.
    if not (isinstance(found, type) and issubclass(found, Provider)) or inspect.isabstract(found):
        raise PluginNotFound(f"{spec!r} is not a provider plugin (a subclass of proxy.plugin.Provider)")
    return found


def _suggest(spec: str) -> str:
    close = difflib.get_close_matches(spec, builtin_names(), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def builtin_names() -> list[str]:
    import pkgutil

    import plugins

    return sorted(m.name for m in pkgutil.iter_modules(plugins.__path__) if not m.name.startswith("_"))
