"""What every ``facr`` command module shares: :class:`Command` and :class:`Group` (one small declaration
per ``facr <noun> <verb>``, its flags added only when that command is the one run or shown), JSON output,
and the checks and loaders more than one command uses.

A command module imports nothing heavy at import time (``facr --help`` reads every group's one-line
help); torch and the rest load inside ``arguments`` and ``run``, when that command is chosen.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from typing import Any, Callable

from facr.errors import FacrError, GraphError


@dataclass(frozen=True)
class Command:
    """One ``facr <noun> [<verb>]``: the line ``--help`` lists it with, the flags ``arguments`` adds to its
    parser (its ``description`` and ``epilog`` may be set there too, where they live in a heavier
    module), and ``run(args)`` → the exit status."""

    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    description: str | None = None
    epilog: str | None = None  # the worked examples
    prog: str | None = None  # the usage line's name, when it is not "facr <noun> <verb>"


@dataclass(frozen=True)
class Group:
    """``facr <noun>``: its verbs (``commands``), or the one command the noun runs itself (``command``)."""

    name: str
    help: str
    commands: tuple[Command, ...] = ()
    command: Command | None = None
    metavar: str | None = None  # the verbs as the usage line shows them (default: their names)


def example(*lines: str) -> str:
    """An epilog of worked examples, one command a line."""
    return ("example:\n  " if len(lines) == 1 else "examples:\n  ") + "\n  ".join(lines)


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True, allow_nan=False))


def add_json(p, help: str = "print one JSON object") -> None:
    p.add_argument("--json", action="store_true", help=help)


def add_out_file(p, help: str) -> None:
    """``--out FILE`` (required) and ``--overwrite`` for a command that writes one file (:func:`out_file`)."""
    p.add_argument("--out", required=True, help=help)
    p.add_argument("--overwrite", action="store_true", help="replace the file at --out if there is one")


def out_file(args, *inputs):
    """``args.out`` checked before the work (:func:`facr.outputs.output_file`): not a folder, none of
    ``inputs`` (the files and folders the command reads), an existing file only with ``--overwrite``."""
    from facr.outputs import output_file

    return output_file(args.out, overwrite=args.overwrite, inputs=inputs)


def add_no_progress(p, help: str = "no progress bar") -> None:
    p.add_argument("--no-progress", action="store_true", help=help)


def fmt3(v) -> str:
    """A metric as the one-line summaries print it: three decimals, ``n/a`` for a missing one."""
    return "n/a" if v is None else f"{v:.3f}"


def with_source(source: str, fn: Callable[[], Any]) -> Any:
    """Run ``fn``; a :class:`GraphError` (no file of its own) is reported against ``source``."""
    try:
        return fn()
    except GraphError as exc:
        raise FacrError(source, exc.message) from None


def check_flag(flag: str, value: int | None, low: int, high: int) -> None:
    """One line naming ``flag`` and its allowed range when an integer flag is out of it."""
    if value is not None and not low <= value <= high:
        raise FacrError(flag, f"must be in [{low}, {high}], got {value}")


def load_labels(root: str, fmt: str | None, strict: bool, verify: bool = False):
    """The records of the dataset folder ``root`` (format ``fmt`` or recognised from its layout),
    labels only: a synth folder's images are not decoded (summaries and induction need no pixels)
    unless ``verify`` asks to decode every image once, as a check."""
    from facr.data.formats import load, resolve_format

    if not os.path.isdir(root):
        raise FacrError(root, "no such folder")
    fmt = resolve_format(root, fmt)
    return load(fmt, root, strict=strict, verify_images=verify, **({"decode": False} if fmt == "synth" else {}))
