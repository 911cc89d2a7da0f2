"""Shared by the benchmark scripts: machine description, appending a section to BENCHMARKS.md, a table
cell, the floor check that makes a script exit 1 when a figure misses its floor, and :func:`run`, which
turns a refusal into one line and exit 2 as the CLI does."""

from __future__ import annotations

import datetime
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def machine() -> str:
    import torch

    return (f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads)")


def append_section(title: str, table: str, notes: str = "") -> None:
    """Append a dated section with the exact command and the machine to BENCHMARKS.md."""
    path = ROOT / "BENCHMARKS.md"
    command = "python " + " ".join([os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])
    head = "" if path.exists() else "# Benchmarks\n\nEach section was appended by the script it names; newest last.\n"
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = f"\n## {title}\n\n- command: `{command}`\n- machine: {machine()}\n- date: {stamp}\n\n{table}\n"
    if notes:
        body += f"\n{notes}\n"
    with path.open("a", encoding="utf-8") as handle:
        handle.write(head + body)


def table_cell(value) -> str:
    """A table cell: a float to three decimals, ``—`` for a figure that does not apply (None), else as is."""
    return "—" if value is None else (f"{value:.3f}" if isinstance(value, float) else str(value))


def check_floor(what: str, value: float | None, floor: float, *, at_most: bool = False) -> int:
    """Print the floor beside the measured value and return the script's exit status: 0 when ``value``
    meets the floor (``value >= floor``; ``value <= floor`` with ``at_most``), 1 when it does not or
    was not measured. Printed to stderr, so a ``--json`` run still prints one JSON object on stdout."""
    met = value is not None and (value <= floor if at_most else value >= floor)
    shown = "not measured" if value is None else f"{value:.4g}"
    print(f"floor: {what} {'<=' if at_most else '>='} {floor:g}; measured {shown}: "
          f"{'met' if met else 'NOT MET (exit 1)'}", file=sys.stderr)
    return 0 if met else 1


def report(args, result: dict, title: str, table: str, notes: str = "") -> None:
    """Print the result (one JSON object with ``--json``, else the table and notes) and append the
    section to BENCHMARKS.md unless ``--no-append``."""
    import json

    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        print(table)
        print(notes)
    if not args.no_append:
        append_section(title, table, notes)


def run(main) -> int:
    """``main()``'s exit status; a :class:`~facr.errors.FacrError` (a bad ``--data``, an ``--out`` facr may
    not write) is one line on stderr, named after the script, and exit 2, as the CLI says it."""
    from facr.errors import FacrError

    try:
        return main()
    except FacrError as exc:
        print(f"{Path(sys.argv[0]).stem}: {exc}", file=sys.stderr)
        return 2
