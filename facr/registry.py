"""One registry for every "choose one by name" in facr: auditors, dataset formats, LM backbones, region
map methods, emotion heads.

A :class:`Registry` lives in a leaf module (it imports nothing of its members); each member registers
itself where it is defined, with :meth:`Registry.register`. Where the members' modules are not
otherwise imported, the registry names them as *providers* — import paths, as strings — and imports
them the first time a name is looked up, so ``facr au list`` never pays for torch and no two modules
import each other.

>>> COLOURS = Registry("colour")
>>> @COLOURS.register("red")
... def red():
...     return "#f00"
>>> COLOURS["red"](), COLOURS.names()
('#f00', ['red'])
>>> COLOURS["blue"]
Traceback (most recent call last):
...
KeyError: "unknown colour 'blue' (choose from red)"
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Name → entry. ``providers``: modules that register entries (import paths), imported once, on
    the first lookup; or a mapping name → module when each entry's module should load only when that
    entry is asked for (then :meth:`names` knows every name without importing anything)."""

    def __init__(self, kind: str, providers: Sequence[str] | Mapping[str, str] = ()):
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._by_name: dict[str, str] = dict(providers) if isinstance(providers, Mapping) else {}
        self._modules: list[str] = [] if isinstance(providers, Mapping) else list(providers)
        self._loaded = False

    def register(self, name: str, entry: T | None = None) -> Callable[[T], T] | T:
        """Add ``entry`` under ``name`` (or, without ``entry``, a decorator that adds what it decorates).
        A name is registered once; the same entry again is a no-op (a module imported twice)."""
        if entry is None:
            def wrap(obj: T) -> T:
                self.register(name, obj)
                return obj
            return wrap
        old = self._entries.get(name)
        if old is not None and old is not entry:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def _load(self, name: str | None = None) -> None:
        if name is not None and name in self._by_name and name not in self._entries:
            importlib.import_module(self._by_name[name])
        if not self._loaded:
            self._loaded = True
            for module in self._modules:
                importlib.import_module(module)

    def get(self, name: str, default: T | None = None) -> T | None:
        """The entry of ``name``, or ``default``."""
        if name not in self._entries:
            self._load(name)
        return self._entries.get(name, default)

    def __getitem__(self, name: str) -> T:
        entry = self.get(name)
        if entry is None:
            raise KeyError(f"unknown {self.kind} {name!r} (choose from {', '.join(self.names())})")
        return entry

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def names(self) -> list[str]:
        """Every name, in registration order (names a mapping of providers gives first, in its order)."""
        self._load()
        return list(dict.fromkeys([*self._by_name, *self._entries]))

    def items(self) -> list[tuple[str, T]]:
        """(name, entry) for every name, each entry's module imported."""
        return [(n, self[n]) for n in self.names()]

    def values(self) -> list[T]:
        """Every entry, in :meth:`names` order."""
        return [entry for _, entry in self.items()]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())
