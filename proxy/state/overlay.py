"""Run-time changes to the YAML, made through the admin API and shared by every replica as documents:

- the **routing overlay** (kind ``routes``, id = model name, value ``{"targets": [...]}``): routes added or
  replaced without a restart, resolved after YAML's exact names and before synced models and wildcards;
- **provider overrides** (kind ``providers``, id = provider name): fields laid over the YAML provider
  (``{"enabled": false}`` takes it out of service), or a whole new provider (``plugin`` given).

Both are validated when written (a bad write answers 400 naming the field) and again when built into a
snapshot, since a reload may since have removed a provider a stored route names: such a document is
skipped with a log line, never an error on the data plane. A provider override never holds a secret:
``api_key`` must be a ``${VAR}`` reference, resolved from each replica's own environment. Whatever field
it is in, a reference must name a variable that ``server.runtime_env_allowlist`` (glob patterns; empty by
default) allows: the admin API must not become a way to read the gateway's environment (a database
password put in a header, a token in the path of a base_url of one's own). Only the override's own
values are interpolated; the YAML provider under it was interpolated when the file was loaded.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase
from typing import cast

import orjson

from proxy.config import ConfigError, ProviderConfig, RouteConfig, Settings, interpolate, parse_settings
from proxy.plugin import Provider
from proxy.plugin.registry import PluginNotFound, load_plugin
from proxy.routing.table import Route, build_route
from proxy.state.snapshot import Snapshot, build_egress, provider_instance

log = logging.getLogger("efflux.overlay")

ROUTES = "routes"
PROVIDERS = "providers"
_REFERENCE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}$")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}")  # the names ${...} interpolates


# -- routes -----------------------------------------------------------------------------------------------
def validate_route(name: str, body: object, providers: Mapping[str, object]) -> RouteConfig:
    """A route as the YAML would take it; ConfigError names the field (``targets[1].provider: ...``)."""
    if not name or name != name.strip():
        raise ConfigError("model: a route needs a non-empty model name without surrounding spaces")
    if any(c in name for c in "*?["):
        # the overlay is looked up by exact name only (resolution order): a pattern would never match
        raise ConfigError("model: overlay routes are exact model names; put wildcard routes in the YAML")
    if not isinstance(body, dict):
        raise ConfigError('<body>: a route is an object {"targets": [...]}')
    try:
        settings = parse_settings(
            {
                "providers": {p: {"plugin": "openai_compatible", "base_url": "http://x"} for p in providers},
                "models": {name: body},
            }
        )
    except ConfigError as exc:
        raise ConfigError(str(exc).replace(f"models.{name}.", "")) from None
    return settings.models[name]


def routes_layer(snapshot: Snapshot, docs: dict[str, bytes]) -> Snapshot:
    overlay: dict[str, Route] = {}
    for name, raw in sorted(docs.items()):
        try:
            config = validate_route(name, orjson.loads(raw), snapshot.providers)
        except (ConfigError, orjson.JSONDecodeError) as exc:
            log.warning("overlay route %r skipped: %s", name, exc)
            continue
        overlay[name] = build_route(name, config)
    return dataclasses.replace(snapshot, overlay=overlay)


# -- providers --------------------------------------------------------------------------------------------
def is_reference(value: str) -> bool:
    """Whether ``value`` is a ``${VAR}`` (or ``${VAR:-default}``) reference as a whole."""
    return _REFERENCE.match(value) is not None


def merged_provider(settings: Settings, name: str, override: Mapping[str, object]) -> ProviderConfig:
    """The YAML provider (if any) with ``override`` laid over it, validated; ConfigError names the field."""
    key = override.get("api_key")
    if key is not None and not (isinstance(key, str) and _REFERENCE.match(key)):
        raise ConfigError("api_key: give a ${VAR} reference; secrets are not stored in shared documents")
    check_variables(override, settings.server.runtime_env_allowlist)
    base = settings.providers.get(name)
    data: dict[str, object] = base.model_dump(exclude_unset=True) if base is not None else {}
    if "plugin" not in data and "plugin" not in override:
        raise ConfigError(f"plugin: required to add provider {name!r}")
    try:
        data.update(cast("dict[str, object]", interpolate(dict(override), os.environ)))
        config = parse_settings({"providers": {name: data}}).providers[name]
        plugin = load_plugin(config.plugin)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace(f"providers.{name}.", "")) from None
    except PluginNotFound as exc:
        raise ConfigError(f"plugin: {exc}") from None
    if not (config.base_url or plugin.default_base_url):
        raise ConfigError(f"base_url: required for plugin {config.plugin!r}")
    return config


def check_variables(node: object, allowed: Sequence[str], path: str = "") -> None:
    """Every ``${VAR}`` in ``node`` names a variable ``allowed`` (glob patterns) lets run-time providers
    read; ConfigError names the field and the variable (never its value)."""
    if isinstance(node, str):
        for name in _VARIABLE.findall(node):
            if not any(fnmatchcase(name, pattern) for pattern in allowed):
                raise ConfigError(
                    f"{path or '<root>'}: ${{{name}}} is not in server.runtime_env_allowlist "
                    "(the environment variables providers changed at run time may name)"
                )
    elif isinstance(node, Mapping):
        for key, value in node.items():
            check_variables(value, allowed, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            check_variables(value, allowed, f"{path}[{i}]")


def base_url(config: ProviderConfig) -> str:
    """Where the provider's calls go: its ``base_url``, else its plugin's default."""
    return config.base_url or load_plugin(config.plugin).default_base_url


def instantiate(name: str, config: ProviderConfig) -> Provider:
    return provider_instance(name, config, load_plugin(config.plugin))


def providers_layer(snapshot: Snapshot, docs: dict[str, bytes]) -> Snapshot:
    if not docs:
        return snapshot
    configs = dict(snapshot.settings.providers)
    instances = dict(snapshot.providers)
    egress = dict(snapshot.egress)
    for name, raw in sorted(docs.items()):
        try:
            override = orjson.loads(raw)
            if not isinstance(override, dict):
                raise ConfigError("<root>: not an object")
            config = merged_provider(snapshot.settings, name, override)
            instance = instantiate(name, config)
            # A provider added at run time gets its egress here (the API cannot set TLS files: none read).
            way = egress.get(name) or build_egress(name, config, snapshot.settings)
        except (ConfigError, orjson.JSONDecodeError) as exc:
            log.warning("provider override %r skipped: %s", name, exc)
            continue
        configs[name], instances[name], egress[name] = config, instance, way
    settings = snapshot.settings.model_copy(update={"providers": configs})
    return dataclasses.replace(snapshot, settings=settings, providers=instances, egress=egress)
