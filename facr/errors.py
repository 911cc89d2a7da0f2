"""Exceptions raised on bad input.

Every error a user can cause by handing facr a bad file or string derives from
:class:`FacrError`; ``facr.cli`` catches exactly these and prints one line,
``facr: <file>: <problem>``, then exits 2.
"""

from __future__ import annotations

import os


class FacrError(Exception):
    """Base class: a problem with something the user gave us (a file, a string, a flag)."""

    def __init__(self, source: str | os.PathLike | None, message: str):
        self.source = None if source is None else os.fspath(source)
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.source}: {self.message}" if self.source else self.message


class UnknownAUError(FacrError, ValueError):
    """A string that names no FACS main action unit."""

    def __init__(self, text: str, message: str | None = None):
        self.text = text
        super().__init__(None, message or f"not a FACS action unit: {text!r}")


class GraphFormatError(FacrError):
    """A facr-graph document that breaks a rule of graphs/SPEC.md."""


class GraphError(FacrError, ValueError):
    """An operation asked of a valid graph that it cannot answer (unknown class, ...)."""

    def __init__(self, message: str):
        super().__init__(None, message)


class DataFormatError(FacrError):
    """A data file (AU table, dataset annotation) that cannot be read as documented."""
