"""Typed TOML: parse a file, build dataclasses from it with every key and type checked, write it back.

`from_dict(cls, data, file)` rejects an unknown key (with a "did you mean") or a wrong type with a
`RecipeError` that names the file and the dotted key; a field typed `int | str` takes either. Recipes
(config.py) and language specs (langs.py) are both read through it. `added_later(default)` marks a field added
after runs were cached, which `fingerprint_data` (what stage fingerprints hash) leaves out at its default.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

from .errors import RecipeError

TOML_KEY = "toml_key"  # dataclass field metadata: the key in TOML when the field name cannot be it ("from")
_OMIT_DEFAULT = "fingerprint_omits_default"


def added_later(default: Any, *, key: str = "") -> Any:
    """A config field added after runs were cached: at `default` it is left out of stage fingerprints
    (`fingerprint_data`).

    So a new option whose default keeps the old behaviour does not make every cached stage run again;
    set to anything else, it is hashed like any other key. `key`: its TOML key when that cannot be the
    field's name (a Python keyword: `pretrain.from` is the field `from_`).
    """
    metadata = {_OMIT_DEFAULT: True, **({TOML_KEY: key} if key else {})}
    if isinstance(default, (list, dict)) or dataclasses.is_dataclass(default):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def fingerprint_data(obj: Any) -> Any:
    """Like dataclasses.asdict (keyed by TOML keys), less the `added_later` fields that are at their default."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if f.metadata.get(_OMIT_DEFAULT) and value == _field_default(f):
                continue
            out[toml_key(f)] = fingerprint_data(value)
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(fingerprint_data(v) for v in obj)
    if isinstance(obj, dict):
        return {k: fingerprint_data(v) for k, v in obj.items()}
    return copy.deepcopy(obj)


def _field_default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def suggest(key: str, options: list[str]) -> str:
    """' (did you mean 'x'?)' for the closest option, else the list of known ones."""
    close = difflib.get_close_matches(key, options, n=1)
    return f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(sorted(options))})"


def _convert(value: Any, tp: Any, where: str, file: str) -> Any:
    """Check `value` against the annotation `tp`, converting ints to floats; raise RecipeError otherwise."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):  # `int | str`: the first type the value is
        for option in typing.get_args(tp):
            try:
                return _convert(value, option, where, file)
            except RecipeError:
                continue
        names = " or ".join(_type_name(option) for option in typing.get_args(tp))
        raise RecipeError(f"{file}: '{where}' must be {names}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise RecipeError(f"{file}: '{where}' must be a table, got {type(value).__name__}")
        return from_dict(tp, value, file, where)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise RecipeError(f"{file}: '{where}' must be a list of {_type_name(item_tp)}, got {value!r}")
        return [_convert(v, item_tp, f"{where}[{i}]", file) for i, v in enumerate(value)]
    if origin is dict:
        _, val_tp = typing.get_args(tp)
        if not isinstance(value, dict):
            raise RecipeError(f"{file}: '{where}' must be a table, got {value!r}")
        return {str(k): _convert(v, val_tp, f"{where}.{k}", file) for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RecipeError(f"{file}: '{where}' must be a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecipeError(f"{file}: '{where}' must be an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise RecipeError(f"{file}: '{where}' must be true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise RecipeError(f"{file}: '{where}' must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported annotation {tp!r} at {where}")  # a bug in this file, not user input


def toml_key(f: dataclasses.Field) -> str:
    """A field's key in TOML: its name, or the `TOML_KEY` metadata of a field whose key is a Python keyword."""
    return f.metadata.get(TOML_KEY, f.name)


def from_dict(cls: type, data: dict[str, Any], file: str = "<config>", prefix: str = "") -> Any:
    """Build dataclass `cls` from a dict, rejecting unknown keys and wrong types."""
    hints = typing.get_type_hints(cls)
    names = {toml_key(f): f.name for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        where = f"{prefix}.{key}" if prefix else key
        if key not in names:
            raise RecipeError(f"{file}: unknown key '{where}'{suggest(key, list(names))}")
        kwargs[names[key]] = _convert(value, hints[names[key]], where, file)
    return cls(**kwargs)


def as_data(obj: Any) -> Any:
    """Plain nested data of a dataclass (like `dataclasses.asdict`), keyed by TOML keys (`toml_key`)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {toml_key(f): as_data(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return type(obj)(as_data(v) for v in obj)
    if isinstance(obj, dict):
        return {k: as_data(v) for k, v in obj.items()}
    return copy.deepcopy(obj)


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge `over` into a copy of `base` (tables merge, everything else replaces)."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_override(item: str) -> dict[str, Any]:
    """Turn 'a.b.c=VALUE' into {'a': {'b': {'c': VALUE}}}; VALUE is a TOML literal, else a string."""
    if "=" not in item:
        raise RecipeError(f"--set {item!r}: expected key=value, e.g. pretrain.epochs=2")
    key, raw = item.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    out: dict[str, Any] = {}
    node = out
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; syntax errors name the file and line."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise RecipeError(f"{path}: {e}") from None
    except FileNotFoundError:
        raise RecipeError(f"{path}: no such file") from None



def to_toml(data: dict[str, Any]) -> str:
    """Minimal TOML writer for resolved configs (tables, arrays of tables, scalars, lists)."""
    lines: list[str] = []

    def scalar(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
        if isinstance(v, list):
            return "[" + ", ".join(scalar(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{scalar(str(k))} = {scalar(x)}" for k, x in v.items()) + " }"
        raise TypeError(type(v))

    def emit(table: dict[str, Any], name: str, array: bool = False) -> None:
        plain = {k: v for k, v in table.items()
                 if not (isinstance(v, dict) and not _is_leaf_dict(k, v))
                 and not (isinstance(v, list) and v and all(isinstance(x, dict) for x in v))}
        if name:
            lines.append(f"\n[[{name}]]" if array else f"\n[{name}]")
        for k, v in plain.items():
            lines.append(f"{_key(k)} = {scalar(v)}")
        for k, v in table.items():
            sub = f"{name}.{_key(k)}" if name else _key(k)
            if isinstance(v, dict) and not _is_leaf_dict(k, v):
                emit(v, sub)
            elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
                for item in v:
                    emit(item, sub, array=True)

    emit(data, "")
    return "\n".join(lines).lstrip("\n") + "\n"


def _is_leaf_dict(key: str, value: dict) -> bool:
    # string->string maps (labels, splits, sha256) are written inline
    return all(not isinstance(v, (dict, list)) for v in value.values()) and key in ("labels", "splits", "sha256")


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else '"' + k + '"'
