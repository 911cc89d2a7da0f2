"""Dataclass configs: built from dicts/YAML with unknown keys refused, saved as canonical JSON."""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from facr.errors import FacrError
from facr.utils import MAX_JSON_DEPTH, read_user_text, write_json

T = TypeVar("T")

MAX_SEED = 2**32 - 1  # what every seeded library takes (numpy's legacy seed is 32-bit); negatives none do


class ConfigError(FacrError):
    """A config file or override that does not fit its dataclass; ``field`` is the dotted name."""

    def __init__(self, source, message: str, field: str | None = None):
        self.field = field
        super().__init__(source, message)


def from_dict(cls: type[T], data: dict[str, Any], source: str | None = None, where: str = "") -> T:
    """Build dataclass ``cls`` from ``data`` (YAML, a ``config.json``, CLI overrides), checked.

    Every value is checked against its field's type hint before the dataclass sees it (see
    :func:`check_value`), then ``__post_init__`` checks ranges. Unknown keys, wrong types and
    invalid values raise :class:`ConfigError` naming the dotted field (``data.image_size``).
    """
    if not isinstance(data, dict):
        raise ConfigError(source, f"{where or 'config'}: expected a mapping, got {_show(data)}", where)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    prefix = f"{where}." if where else ""
    unknown = sorted(str(k) for k in data if k not in fields)
    if unknown:
        raise ConfigError(source, f"unknown config field(s): {', '.join(prefix + k for k in unknown)} "
                                  f"(known: {', '.join(fields)})", where)
    required = [n for n, f in fields.items() if n not in data
                and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if required:
        raise ConfigError(source, f"missing config field(s): {', '.join(prefix + n for n in required)}", where)
    kwargs = {name: check_value(hints[name], value, prefix + name, source) for name, value in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        text = str(exc)
        first = text.split(" ", 1)[0].rstrip(":")
        if where:  # "image_size must be ..." inside data reads "data.image_size must be ..."
            text = f"{where}.{text}" if first in fields else f"{where}: {text}"
        raise ConfigError(source, text, where) from None


def check_value(hint: Any, value: Any, where: str, source: str | None = None) -> Any:
    """``value`` checked against type ``hint`` (and converted where lossless), for field ``where``.

    ``int`` takes integers only (``true`` is not an integer, ``1.5`` is not rounded); ``float``
    takes finite numbers (an integer becomes a float; a numeric string too, since YAML 1.1 reads
    ``1e-3`` as a string); ``str`` takes strings (an integer becomes its digits: YAML reads
    ``subject: 12`` as a number); ``bool`` takes ``true`` / ``false`` only. ``X | None``,
    ``list[X]``, ``tuple[X, ...]``, ``dict[K, V]``, ``Literal[...]`` and nested dataclasses (a
    mapping, built with :func:`from_dict`) are checked item by item, naming ``field[i]`` / ``field.key``.
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or hint is object:
        return value
    if hint is type(None):
        if value is None:
            return None
        raise _mismatch(hint, value, where, source)
    if origin in (typing.Union, types.UnionType):
        return _check_union(hint, args, value, where, source)
    if origin is typing.Literal:
        if any(value == a and type(value) is type(a) for a in args):
            return value
        raise _mismatch(hint, value, where, source)
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if isinstance(value, dict):
            return from_dict(hint, value, source, where)
        raise _mismatch(hint, value, where, source)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise _mismatch(hint, value, where, source)
    if hint is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)
        raise _mismatch(hint, value, where, source)
    if hint is float:
        return _check_float(value, where, source)
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return str(value)
        raise _mismatch(hint, value, where, source)
    if origin in (list, tuple) or hint in (list, tuple):
        return _check_sequence(hint, origin or hint, args, value, where, source)
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise _mismatch(hint, value, where, source)
        key_hint, value_hint = args or (Any, Any)
        return {check_value(key_hint, k, f"{where} key {k!r}", source):
                check_value(value_hint, v, f"{where}.{k}", source) for k, v in value.items()}
    if isinstance(hint, type) and not isinstance(value, hint):
        raise _mismatch(hint, value, where, source)
    return value


def _check_union(hint, args, value, where, source):
    if value is None and type(None) in args:
        return None
    for arm in args:
        if arm is type(None):
            continue
        try:
            return check_value(arm, value, where, source)
        except _Mismatch as exc:
            if exc.field != where:  # the value had the arm's shape and failed inside it: that is the problem
                raise
    raise _mismatch(hint, value, where, source)


def _check_float(value, where, source) -> float:
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise _mismatch(float, value, where, source) from None
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float(value)
    else:
        raise _mismatch(float, value, where, source)
    if not math.isfinite(number):
        raise ConfigError(source, f"{where}: expected a finite number, got {_show(value)}", where)
    return number


def _check_sequence(hint, kind, args, value, where, source):
    if not isinstance(value, (list, tuple)):
        raise _mismatch(hint, value, where, source)
    if kind is tuple and args and args[-1] is not Ellipsis:
        if len(value) != len(args):
            raise ConfigError(source, f"{where}: expected a list of {len(args)} items, got {len(value)}", where)
        items = [check_value(h, v, f"{where}[{i}]", source) for i, (h, v) in enumerate(zip(args, value))]
    else:
        item = args[0] if args else Any
        items = [check_value(item, v, f"{where}[{i}]", source) for i, v in enumerate(value)]
    return tuple(items) if kind is tuple else items


class _Mismatch(ConfigError):
    """A value of the wrong kind altogether (another arm of a union may take it)."""


def _mismatch(hint, value, where, source) -> ConfigError:
    return _Mismatch(source, f"{where}: expected {_describe(hint)}, got {_show(value)}", where)


def _describe(hint) -> str:
    """A type hint in a user's words: ``int | None`` → ``an integer or null``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(_show(a) for a in args)
    if origin in (list, tuple) or hint in (list, tuple):
        return "a list"
    if origin is dict or hint is dict or dataclasses.is_dataclass(hint):
        return "a mapping"
    names = {type(None): "null", bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def _show(value) -> str:
    """A value as the user wrote it, short: YAML's words for null and booleans, containers by kind."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_range(name: str, value, low=None, high=None) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``low <= value <= high`` (either bound may be None)."""
    if (low is not None and value < low) or (high is not None and value > high):
        span = (f"in [{low}, {high}]" if low is not None and high is not None
                else f">= {low}" if low is not None else f"<= {high}")
        raise ValueError(f"{name} must be {span}, got {value}")


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


MAX_CONFIG_BYTES = 2**20  # the shipped configs are a few kB
MAX_CONFIG_VALUES = 100_000  # every value a config holds, a YAML alias counted each time it is used


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """A YAML mapping from ``path``; every problem is one :class:`ConfigError` line naming the file.

    Besides syntax, a file over :data:`MAX_CONFIG_BYTES`, nesting deeper than
    :data:`facr.utils.MAX_JSON_DEPTH` (PyYAML recurses per level) and more than
    :data:`MAX_CONFIG_VALUES` values once aliases are expanded (the "billion laughs" file) are refused.
    """
    import yaml

    path = Path(path)
    text = read_user_text(path, ConfigError, "a YAML config file", MAX_CONFIG_BYTES)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        why = " ".join(str(getattr(exc, "problem", None) or exc).split())  # PyYAML's own text spans lines
        raise ConfigError(path, f"{where}not valid YAML ({why})") from None
    except RecursionError:
        raise ConfigError(path, f"not valid YAML: nested deeper than {MAX_JSON_DEPTH} levels") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path, f"top level must be a mapping, got {type(data).__name__}")
    _check_size(data, path)
    return data


def _check_size(data: Any, path: Path) -> None:
    """Refuse a document nested deeper than MAX_JSON_DEPTH or holding more than MAX_CONFIG_VALUES values
    (iteratively: the walk itself must neither recurse nor follow an alias bomb to the end)."""
    stack, seen = [(data, 1)], 0
    while stack:
        node, depth = stack.pop()
        seen += 1
        if seen > MAX_CONFIG_VALUES:
            raise ConfigError(path,
                              f"holds more than {MAX_CONFIG_VALUES:,} values (YAML aliases count each time used)")
        if depth > MAX_JSON_DEPTH:
            raise ConfigError(path, f"nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend((v, depth + 1) for v in node)


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
