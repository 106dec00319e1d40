"""The configuration reference (``docs/configuration.md``), generated from the schema.

Every setting of :class:`proxy.config.Settings` with its type, default and description (the docstring
under the field in ``schema.py``). Regenerate after changing the schema::

    python -m proxy.config.reference > docs/configuration.md

``tests/config/test_reference.py`` fails when the file is stale or a setting has no description.
"""

from __future__ import annotations

import enum
import ipaddress
import sys
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from proxy.config.schema import Settings, parse_duration

COMMAND = "python -m proxy.config.reference > docs/configuration.md"

INTRO = f"""\
# Configuration reference

<!-- Generated from proxy/config/schema.py by `{COMMAND}`.
     Edit the descriptions there (the docstring under each field), not this file. -->

The gateway reads one YAML file (`efflux-gateway serve --config FILE`; `--config` defaults to
`$EFFLUX_CONFIG`, else `config/gateway.example.yaml`). `config/gateway.example.yaml` is a commented
example; `efflux-gateway init DIR` writes a starter one with fresh secrets.

- `${{VAR}}` takes an environment variable (an error if it is unset), `${{VAR:-default}}` falls back when it
  is unset or empty. Variables come from the process environment, then from a `.env` file beside the
  config (`NAME=value` lines; the environment wins). Secrets belong there, never in the YAML.
- Durations are `"500ms"`, `"5s"`, `"2m"`, `"1h"`, `"1d"` or a number of seconds.
- Unknown keys are errors. `efflux-gateway check --config FILE` lists every problem, each with its YAML
  path (`models.gpt-4o.targets[1].provider: unknown provider 'aihubmx' (did you mean 'aihubmix'?)`), and
  exits 2.
- In the paths below, `<name>` is a name of your choice (a provider, a model route, a tenant, a model)
  and `[]` an item of a list.
"""


@dataclass(frozen=True)
class Row:
    path: str
    type: str
    default: str
    description: str


def _is_section(annotation: object) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _strip_optional(annotation: object) -> tuple[object, bool]:
    """``X | None`` -> (X, True)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def _bounds(metadata: list[object]) -> str:
    marks: list[str] = []
    for item in metadata:
        for attr, sign in (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤")):
            value = getattr(item, attr, None)
            if value is not None and abs(value) < 2**31:  # the JSON-safety and int32 bounds: noise
                marks.append(f"{sign} {value:g}" if isinstance(value, float) else f"{sign} {value}")
    return ", ".join(marks)


def _is_duration(metadata: list[object]) -> bool:
    return any(getattr(item, "func", None) is parse_duration for item in metadata)


def describe_type(annotation: object, metadata: list[object] | None = None) -> str:
    """A type as a reader of the YAML thinks of it."""
    meta = list(metadata or [])
    if typing.get_origin(annotation) is typing.Annotated:
        inner, *extra = typing.get_args(annotation)
        for item in extra:
            meta.extend(item.metadata if isinstance(item, FieldInfo) else [item])
        return describe_type(inner, meta)
    annotation, _ = _strip_optional(annotation)
    if typing.get_origin(annotation) is typing.Annotated:
        return describe_type(annotation, meta)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "one of " + ", ".join(f"`{m.value}`" for m in annotation)
    if origin is list:
        return f"list of {describe_type(args[0])}"
    if origin is dict:
        return f"mapping of name to {describe_type(args[1])}"
    if _is_section(annotation):
        return "section"
    bounds = _bounds([m for m in meta if isinstance(m, annotated_types.BaseMetadata)] + meta)
    if _is_duration(meta):
        base = "duration"
    elif annotation is bool:
        base = "boolean"
    elif annotation is int:
        base = "integer"
    elif annotation is float:
        base = "number"
    elif annotation is str:
        base = "string"
    elif annotation in (ipaddress.IPv4Network, ipaddress.IPv6Network) or "Network" in str(annotation):
        base = "network (CIDR)"
    else:
        base = getattr(annotation, "__name__", str(annotation))
    bounds = ", ".join(dict.fromkeys(b for b in bounds.split(", ") if b))
    return f"{base} ({bounds})" if bounds else base


def format_duration(seconds: float) -> str:
    if seconds and seconds < 1:
        return f"{seconds * 1000:g}ms"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= 2 * size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def format_value(value: object, duration: bool = False, size: bool = False) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if duration and isinstance(value, int | float):
        return format_duration(float(value))
    if size and isinstance(value, int) and value >= 1024 and value % 1024 == 0:
        unit = next(f"{value // n} {u}" for n, u in ((1024**2, "MiB"), (1024, "KiB")) if value % n == 0)
        return f"{value} ({unit})"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "[" + ", ".join(f'"{v}"' if isinstance(v, str) else format_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {format_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def _default(name: str, field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if value is PydanticUndefined:
        return "required"
    if isinstance(value, BaseModel):
        return "(its settings' defaults)"
    duration = _is_duration(list(field.metadata)) or _annotated_duration(field.annotation)
    shown = format_value(value, duration, size=name.endswith("_bytes"))
    return shown if value is None else f"`{shown}`"


def _annotated_duration(annotation: object) -> bool:
    annotation, _ = _strip_optional(annotation)
    if typing.get_origin(annotation) is typing.Annotated:
        return _is_duration(list(typing.get_args(annotation)[1:]))
    return False


def _sub_section(annotation: object) -> tuple[str, type[BaseModel]] | None:
    """For a section, a list of sections or a mapping of sections: the path step and the section."""
    annotation, _ = _strip_optional(annotation)
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is list and _is_section(args[0]):
        return "[]", typing.cast(type[BaseModel], args[0])
    if origin is dict and _is_section(args[1]):
        return ".<name>", typing.cast(type[BaseModel], args[1])
    if _is_section(annotation):
        return "", typing.cast(type[BaseModel], annotation)
    return None


def rows(model: type[BaseModel] = Settings, prefix: str = "") -> Iterator[Row]:
    """Every setting below ``model``, depth first in the schema's order; a section is a row too."""
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        path = prefix + name
        description = " ".join((field.description or "").split())
        sub = _sub_section(field.annotation)
        if sub is None:
            kind = describe_type(field.annotation, list(field.metadata))
            yield Row(path, kind, _default(name, field), description)
            continue
        step, section = sub
        kind = {"[]": "list of", ".<name>": "mapping of name to"}.get(step, "")
        shown = f"{kind} section".strip() if kind else "section"
        yield Row(path, shown, _default(name, field), description)
        yield from rows(section, f"{path}{step}.")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    out = [INTRO]
    for name, field in Settings.model_fields.items():
        if field.exclude:
            continue
        sub = _sub_section(field.annotation)
        section = sub[1] if sub else None
        out.append(f"\n## `{name}`\n")
        doc = " ".join((section.__doc__ or "").split()) if section is not None else ""
        out.append((doc or " ".join((field.description or "").split())).replace("``", "`") + "\n")
        out.append("| setting | type | default | description |\n| --- | --- | --- | --- |")
        for row in rows(Settings):
            if row.path == name or not (row.path.startswith(name + ".") or row.path.startswith(name + "[")):
                continue
            out.append(
                f"| `{row.path}` | {_cell(row.type)} | {_cell(row.default)} | {_cell(row.description)} |"
            )
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
