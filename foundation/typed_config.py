"""Strict loading of YAML mappings into frozen dataclasses.

Shared by the simulator and by ``train.py``: every error names the full key
path (``data.contaminants.CR.rate``) and the value received, and an unknown
key is an error, so a typo can never be silently ignored.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path

import yaml


class ConfigError(ValueError):
    """A configuration value is missing, unknown, of the wrong type or out of range."""


def _describe(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _convert(tp, value, path: str):
    """Convert ``value`` to the annotated type ``tp`` or raise ConfigError naming ``path``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)

    if tp is typing.Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in args:
            if option is type(None):
                continue
            try:
                return _convert(option, value, path)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{path}: {_describe(value)} matches none of {tp}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{path}: must be one of {list(args)}, got {_describe(value)}")
        return value
    if dataclasses.is_dataclass(tp):
        return load_dataclass(tp, value, path)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list of {len(args)} values, got {_describe(value)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{path}: expected {len(args)} values, got {len(value)}: {_describe(value)}")
        return tuple(_convert(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is dict:
        key_t, val_t = args
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {_describe(value)}")
        return {_convert(key_t, k, f"{path}"): _convert(val_t, v, f"{path}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {_describe(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {_describe(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {_describe(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {_describe(value)}")
        return value
    raise TypeError(f"unsupported annotation {tp!r} at {path}")


def load_dataclass(cls, data, path: str = ""):
    """Build dataclass ``cls`` from mapping ``data``, strictly.

    Unknown keys, missing required keys and wrong types raise ConfigError with the
    full dotted key path. After construction, a ``validate(path)`` method of the
    dataclass (if any) checks ranges and relations.
    """
    where = path or "<top level>"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {_describe(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = f"{path}.{unknown[0]}" if path else str(unknown[0])
        raise ConfigError(f"{key}: unknown key (known keys: {', '.join(sorted(fields))})")
    kwargs = {}
    for name, field in fields.items():
        key = f"{path}.{name}" if path else name
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], key)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{key}: required key is missing")
    obj = cls(**kwargs)
    if hasattr(obj, "validate"):
        obj.validate(path)
    return obj


def to_plain(obj):
    """Dataclass (nested) -> plain dicts/lists, ready for ``yaml.safe_dump``."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj


def merge_mappings(base: dict, override: dict) -> dict:
    """Deep merge: mappings merge key by key, anything else in ``override`` replaces."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_mappings(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_yaml(path: str | Path, *, search_dir: str | Path | None = None, _seen=()) -> tuple[dict, Path]:
    """Read a YAML mapping; a bare name is also looked up in ``search_dir``.

    A top-level ``base: other.yaml`` (relative to the file) is read first and
    this file's keys override it, so variants of a config stay one line long.
    Returns the merged mapping and the resolved path.
    """
    candidate = Path(path)
    if not candidate.exists() and search_dir is not None and not candidate.is_absolute():
        alt = Path(search_dir) / candidate
        if alt.exists():
            candidate = alt
    if not candidate.exists():
        where = f" (also looked in {search_dir})" if search_dir is not None else ""
        raise ConfigError(f"config file {str(path)!r} not found{where}")
    try:
        data = yaml.safe_load(candidate.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{candidate}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{candidate}: the top level must be a mapping, got {_describe(data)}")
    if "base" in data:
        base_name = data.pop("base")
        if not isinstance(base_name, str):
            raise ConfigError(f"{candidate}: base: expected a file name, got {_describe(base_name)}")
        base_path = (candidate.parent / base_name).resolve()
        if base_path in _seen:
            raise ConfigError(f"{candidate}: base: {base_name!r} includes itself")
        base, _ = read_yaml(base_path, _seen=_seen + (candidate.resolve(),))
        data = merge_mappings(base, data)
    return data, candidate
