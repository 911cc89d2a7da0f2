"""Shared by the benchmark scripts: machine description and appending a section to BENCHMARKS.md."""

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
