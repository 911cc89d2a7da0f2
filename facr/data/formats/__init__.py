"""Loaders for datasets in their released layouts; each returns a :class:`~facr.data.records.LoadResult`.

Every loader module defines ``load(root, *, strict=False) -> LoadResult``. With
``strict=False`` malformed rows and unreadable files are recorded in ``LoadResult.issues``
(file, line, problem) and skipped; with ``strict=True`` the first one raises
:class:`~facr.errors.DataFormatError`.
"""

from __future__ import annotations

import importlib
import os

FORMATS = ("synth", "unbc", "affwild2", "affectnet", "affectnet+faba", "faba", "disfa", "bp4d")
_MODULES = {"affectnet+faba": "affectnet"}


def get_loader(fmt: str):
    """The ``load`` function of a format name (see ``FORMATS``)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    module = importlib.import_module(f"facr.data.formats.{_MODULES.get(fmt, fmt).replace('+', '_')}")
    if fmt == "affectnet+faba":
        return module.load_with_faba
    return module.load


def load(fmt: str, root: str | os.PathLike, *, strict: bool = False):
    """Load ``root`` in format ``fmt``."""
    return get_loader(fmt)(root, strict=strict)
