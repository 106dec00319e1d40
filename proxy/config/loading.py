"""Reading the YAML file: safe parsing without duplicate keys, ``${VAR}`` interpolation, validation.

``load_settings(path)`` returns a validated, immutable :class:`Settings` or raises :class:`ConfigError`
whose message names the YAML path (``models.gpt-4o.targets[1].provider: unknown provider 'aihubmx'``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import yaml
from pydantic import ValidationError

from proxy.config.dotenv import env_beside
from proxy.config.errors import ConfigError, format_error, yaml_path
from proxy.config.schema import CrossReferenceError, Settings, reference_problems

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(node: object, env: Mapping[str, str], path: str = "") -> object:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string value (not in keys)."""
    if isinstance(node, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            value = env.get(name)
            if value is None or (value == "" and default is not None):
                if default is None:
                    raise ConfigError(f"{path or '<root>'}: environment variable {name} is not set")
                return default
            return value

        return _VAR.sub(substitute, node)
    if isinstance(node, dict):
        return {k: interpolate(v, env, yaml_path(path, k)) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, env, f"{path}[{i}]") for i, v in enumerate(node)]
    return node


class _StrictLoader(yaml.SafeLoader):
    """safe_load that refuses a key given twice in one mapping. Plain PyYAML keeps the last one silently,
    so a second ``providers.openai`` block would replace the first without a word."""


def _map_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode) -> object:
    seen: set[object] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # ``<<: *anchor`` merges may be overridden by explicit keys: that is their purpose
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:  # an unhashable (complex) key: SafeLoader reports it itself
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark, f"duplicate key {key!r}", key_node.start_mark
            )
    return (yield from loader.construct_yaml_map(node))


_StrictLoader.add_constructor("tag:yaml.org,2002:map", _map_without_duplicates)


def parse_yaml(text: str, where: str) -> object:
    """Parse YAML (safe types only, no duplicate keys); a syntax error becomes a one-line ConfigError
    ``<where> line L, column C: problem``."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: safe types only
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "?"
        problem = getattr(exc, "problem", None) or "invalid YAML"
        # ``{port: ${PORT}}`` is not YAML: inside {...} or [...] the '{' of an unquoted ${VAR} opens a
        # mapping. The bare parser message ("expected ',' or '}'") does not say so.
        line = text.splitlines()[mark.line] if mark is not None and mark.line < len(text.splitlines()) else ""
        if "${" in line:
            problem += " (inside {...} or [...], quote values that use ${VAR}: '${VAR}')"
        raise ConfigError(f"{where} {at}: {problem}") from None


def parse_settings(data: object, *, base_dir: str = ".") -> Settings:
    """Validate an already-interpolated mapping (YAML, or built in code for the library use)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("<root>: the config must be a mapping of sections (server, providers, models, ...)")
    if "base_dir" in data:
        # base_dir is filled in from the file's location below; a YAML key of that name would be silently
        # overwritten, so it is an unknown key like any other.
        raise ConfigError("base_dir: unknown key")
    try:
        return Settings.model_validate({**data, "base_dir": base_dir})
    except ValidationError as exc:
        lines: list[str] = []
        for err in exc.errors():
            ctx = err.get("ctx") or {}
            cause = ctx.get("error") if isinstance(ctx, dict) else None
            if isinstance(cause, CrossReferenceError):
                lines.extend(cause.problems)
            else:
                lines.append(format_error(dict(err)))
        # The cross-references run only on a file that validated: check them on what could be read, so that
        # one run reports a misspelt provider beside an unknown key.
        lines.extend(_raw_reference_problems(data))
        raise ConfigError("\n".join(dict.fromkeys(lines))) from None  # each problem once, in order


def _raw_reference_problems(data: dict[object, object]) -> list[str]:
    providers, models, keys = data.get("providers"), data.get("models"), data.get("keys")
    if not isinstance(providers, dict):
        return []
    targets = [
        (str(name), i, target.get("provider"))
        for name, route in (models.items() if isinstance(models, dict) else ())
        if isinstance(route, dict) and isinstance(route.get("targets"), list)
        for i, target in enumerate(route["targets"])
        if isinstance(target, dict)
    ]
    entries = [
        (i, key.get("name"), key.get("key"))
        for i, key in enumerate(keys if isinstance(keys, list) else ())
        if isinstance(key, dict)
    ]
    return reference_problems([str(p) for p in providers], targets, entries)


def load_settings(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Settings:
    """``env`` defaults to the process environment over the ``.env`` file beside the config
    (:mod:`proxy.config.dotenv`)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the config file ({exc.strerror})") from None
    except UnicodeDecodeError as exc:  # a ValueError, not an OSError: without this, a traceback
        raise ConfigError(f"{file}: the config file is not UTF-8 text (byte {exc.start})") from None
    data = parse_yaml(text, "<yaml>")
    if env is None:
        env = {**env_beside(file), **os.environ}
    data = interpolate(data, env)
    return parse_settings(data, base_dir=str(file.resolve().parent))
