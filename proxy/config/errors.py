"""What a bad config raises, and how a pydantic error becomes one line naming the YAML path."""

from __future__ import annotations

from collections.abc import Mapping


class ConfigError(Exception):
    """A config that cannot serve. ``str(err)`` is one line per problem, each naming the YAML path."""


def yaml_path(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def format_location(loc: tuple[int | str, ...], prefix: str = "") -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not (isinstance(part, str) and (part.startswith("function-") or part.startswith("tagged-"))):
            out = yaml_path(out, part)
    return out or "<root>"


def format_error(err: Mapping[str, object], prefix: str = "") -> str:
    """One pydantic error as ``<yaml path>: <problem>``; ``prefix`` is the path of the validated node
    (the price file validates one entry at a time, and an error on the entry itself has an empty loc)."""
    kind = err.get("type")
    raw_loc = err.get("loc", ())
    loc: tuple[int | str, ...] = tuple(raw_loc) if isinstance(raw_loc, tuple) else ()
    where = format_location(loc, prefix)
    if kind == "extra_forbidden":
        return f"{where}: unknown key"
    if kind == "missing":
        return f"{where}: required"
    message = str(err.get("msg", "invalid"))
    message = message.removeprefix("Value error, ")
    return f"{where}: {message[:1].lower()}{message[1:]}"
