"""Dataclass configs: built from dicts/YAML with unknown keys refused, saved as canonical JSON."""

from __future__ import annotations

import dataclasses
import os
import typing
from pathlib import Path
from typing import Any, TypeVar

from facr.errors import FacrError
from facr.utils import write_json

T = TypeVar("T")


class ConfigError(FacrError):
    """A config file or override that does not fit its dataclass."""


def from_dict(cls: type[T], data: dict[str, Any], source: str | None = None, where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; nested dataclass fields are built recursively.

    Unknown keys and invalid values raise :class:`ConfigError` naming the field (``a.b``).
    """
    if not isinstance(data, dict):
        raise ConfigError(source, f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(source, f"unknown config field(s): {', '.join(prefix + k for k in unknown)} "
                                  f"(known: {', '.join(fields)})")
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        sub = _dataclass_in(hint)
        if sub is not None and isinstance(value, dict):
            value = from_dict(sub, value, source, f"{where}.{name}" if where else name)
        elif isinstance(value, list) and typing.get_origin(hint) is list and _dataclass_in(hint) is not None:
            item = _dataclass_in(hint)
            value = [from_dict(item, v, source, f"{where + '.' if where else ''}{name}[{i}]") for i, v in enumerate(value)]
        elif isinstance(value, list) and typing.get_origin(hint) is tuple:
            value = tuple(value)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        prefix = f"{where}: " if where else ""
        raise ConfigError(source, f"{prefix}{exc}") from None


def _dataclass_in(hint) -> type | None:
    if dataclasses.is_dataclass(hint):
        return hint
    for arg in typing.get_args(hint):
        if dataclasses.is_dataclass(arg):
            return arg
    return None


def to_dict(config: Any) -> dict[str, Any]:
    """A dataclass config as plain JSON-able data (tuples become lists)."""
    return _plain(dataclasses.asdict(config))


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """A YAML mapping from ``path`` (errors name the file)."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(path, "no such file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise ConfigError(path, f"{where}not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path, f"top level must be a mapping, got {type(data).__name__}")
    return data


def save_config(config: Any, path: str | os.PathLike) -> None:
    """Write a dataclass config as canonical JSON, atomically."""
    write_json(path, to_dict(config))


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any] | None, source=None) -> dict[str, Any]:
    """Set dotted keys (``{"data.path": ...}``) in a nested config mapping; None values are skipped."""
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(source, f"{key}: {part} is not a section")
        node[parts[-1]] = value
    return data
