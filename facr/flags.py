"""Command-line flags generated from config dataclasses, so a setting's default, type and help are stated
once, in the dataclass: ``n_bootstrap: int = field(default=50, metadata={"help": "bootstrap resamples"})``.

:func:`add_fields` adds one flag per named field (dotted names reach into nested configs:
``"loss.lambda_s"``); :func:`given` reads back the flags the user gave, as ``{field: value}``. A flag
left out is absent from that mapping, so the dataclass (or a YAML config under it) supplies the
default: the parser never holds a copy of it. ``--help`` shows it, read from the dataclass.

Field metadata (each key optional; a call site's ``extra`` overrides it for one command):

* ``help`` — the flag's help; ``(default X)`` is appended unless the text speaks of the default;
* ``flag`` — the flag's name where it is not the field's (``--bootstrap`` for ``n_bootstrap``); a
  boolean field whose flag starts ``--no-`` sets False, any other boolean flag sets True;
* ``choices``, ``metavar``, ``required``, ``const`` (with ``nargs: "?"``);
  ``action: "append"`` for a list given one item a flag
  (``--subject A --subject B``), ``nargs`` for a list given in one go.

Torch-free and import-light: the recipes, the library's own flag functions and ``facr.cli`` use it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Mapping, Sequence

_ARGPARSE_KEYS = ("choices", "metavar", "required", "nargs", "const", "action")


def _resolve(cls: type, name: str) -> tuple[dataclasses.Field, Any]:
    """The field of ``cls`` a dotted ``name`` reaches, and its type hint."""
    *parents, last = name.split(".")
    for part in parents:
        cls = typing.get_type_hints(cls)[part]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if last not in fields:
        raise KeyError(f"{cls.__name__} has no field {last!r} (flag for {name!r})")
    return fields[last], typing.get_type_hints(cls)[last]


def _spec(cls: type, name: str, extra: Mapping[str, Any] | None) -> tuple[dataclasses.Field, Any, dict]:
    f, hint = _resolve(cls, name)
    return f, hint, {**f.metadata, **(extra or {})}


def flag_of(cls: type, name: str, extra: Mapping[str, Any] | None = None) -> str:
    """The flag that sets field ``name`` of ``cls`` (``--lambda-s`` for ``loss.lambda_s`` unless renamed)."""
    return _spec(cls, name, extra)[2].get("flag") or "--" + name.rsplit(".", 1)[-1].replace("_", "-")


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def _base(hint: Any) -> Any:
    """``int | None`` → ``int``; other hints unchanged."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        arms = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(arms) == 1:
            return arms[0]
    return hint


def default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _help(f: dataclasses.Field, spec: dict, is_bool: bool) -> str:
    text = spec.get("help", "")
    default = default_of(f)
    if not is_bool and default is not None and not spec.get("required") and "default" not in text:
        # "seed (folds)" reads "seed (folds; default 0)", "seed" reads "seed (default 0)"
        if text.endswith(")"):
            text = f"{text[:-1]}; default {default})"
        else:
            text = f"{text} (default {default})".lstrip()
    return text.replace("%", "%%")  # argparse formats help with %


def add_fields(parser, cls: type, names: Sequence[str], extra: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """Add one flag per field in ``names`` (dotted for nested configs) of dataclass ``cls`` to ``parser``
    (or an argument group). ``extra[name]`` overrides that field's metadata for this parser. Every flag
    defaults to None (left out): see :func:`given`."""
    for name in names:
        f, hint, spec = _spec(cls, name, (extra or {}).get(name))
        flag, typ = flag_of(cls, name, spec), _base(hint)
        kwargs: dict[str, Any] = {k: spec[k] for k in _ARGPARSE_KEYS if k in spec}
        if typ is bool:
            kwargs.update(action="store_const", const=not flag.startswith("--no-"))
        else:
            item = typing.get_args(typ)[0] if typing.get_origin(typ) in (list, tuple) else typ
            if item not in (str, int, float):
                raise TypeError(f"{cls.__name__}.{name}: no flag type for {hint!r} (add the flag by hand)")
            kwargs["type"] = item
            if typing.get_origin(typ) in (list, tuple) and "action" not in kwargs:
                kwargs.setdefault("nargs", "+")
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            kwargs.setdefault("required", True)  # a field without a default
        parser.add_argument(flag, dest=_dest(flag), default=None, help=_help(f, spec, typ is bool), **kwargs)


def given(args, cls: type, names: Sequence[str], extra: Mapping[str, Mapping[str, Any]] | None = None) -> dict:
    """``{field name: value}`` of the flags in ``names`` the user gave (those left out are not there)."""
    values = {name: getattr(args, _dest(flag_of(cls, name, (extra or {}).get(name)))) for name in names}
    return {name: value for name, value in values.items() if value is not None}
