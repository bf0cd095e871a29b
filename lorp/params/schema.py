"""A frozen dataclass read from a YAML mapping, refused with the fix named: unknown keys (with the closest valid
one), wrong types, values outside their choices or below their minimum. Field metadata carries the rules."""

import dataclasses
import difflib
import types
import typing
from dataclasses import field
from typing import Any

from lorp.errors import ParamsError


def choice(default: Any, choices: tuple, minimum: int | None = None):
    return field(default=default, metadata={"choices": choices, "min": minimum})


def at_least(default: Any, minimum: int = 1):
    return field(default=default, metadata={"min": minimum})


def list_of(default: list, choices: tuple | None = None, minimum: int | None = None, empty: bool = False):
    return field(default_factory=lambda: list(default), metadata={"choices": choices, "min": minimum, "empty": empty})


def closest(name: str, options) -> str:
    match = difflib.get_close_matches(name, list(options), n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else f" (valid: {', '.join(options)})"


def type_name(tp) -> str:
    if isinstance(tp, types.UnionType):
        return " or ".join(type_name(t) for t in typing.get_args(tp))
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def check_value(where: str, value: Any, annotation, meta) -> None:
    """Check value against a field's annotation (str, int, bool, int | None, list[str], list[int]) and metadata."""
    options = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    for option in options:
        origin = typing.get_origin(option) or option
        if option is type(None) and value is None:
            return
        if origin is list and isinstance(value, list):
            item_type = typing.get_args(option)[0]
            if not value and not meta.get("empty"):
                raise ParamsError(f"{where} is empty: give at least one value"
                                  + (f" of {', '.join(meta['choices'])}" if meta.get("choices") else ""))
            for item in value:
                if isinstance(item, bool) or not isinstance(item, item_type):
                    raise ParamsError(f"{where}: expected a list of {type_name(item_type)}, got {value!r}")
                check_scalar(f"{where}: every value", item, meta)
            return
        if origin in (int, float, str) and isinstance(value, origin) and not isinstance(value, bool):
            check_scalar(where, value, {**meta, "nullable": type(None) in options})
            return
        if origin is bool and isinstance(value, bool):
            return
    names = " or ".join(type_name(typing.get_origin(o) or o) for o in options)
    raise ParamsError(f"{where}: expected {names}, got {value!r}")


def check_scalar(where: str, value: Any, meta) -> None:
    choices, minimum = meta.get("choices"), meta.get("min")
    if choices and value not in choices:
        raise ParamsError(f"{where}: unknown value {value!r}{closest(str(value), choices)}")
    if minimum is not None and isinstance(value, int) and value < minimum:
        extra = ", or null" if meta.get("nullable") else ""
        raise ParamsError(f"{where} must be >= {minimum}{extra}, got {value}")



def section(name: str, cls: type, body: Any, optional: set[str] = frozenset()):
    if not isinstance(body, dict):
        raise ParamsError(f"params.yaml: section '{name}' must be a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key, value in body.items():
        if key not in fields:
            raise ParamsError(f"params.yaml: unknown key '{name}.{key}'{closest(key, fields)}")
        check_value(f"{name}.{key}", value, hints[key], fields[key].metadata)
    missing = [k for k in fields if k not in body and k not in optional]
    if missing:
        raise ParamsError(f"params.yaml: missing {', '.join(f'{name}.{k}' for k in missing)}")
    return cls(**body)
