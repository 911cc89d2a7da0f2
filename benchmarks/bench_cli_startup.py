"""Start-up time of the ``facr`` command: ``facr --help`` and the light commands, side by side with the bare
interpreter and with a command that needs torch (``facr train reasoner --help``).

Each command runs ``--runs`` times as a fresh process (the ``facr`` console script beside this Python, else
``python -m facr.cli``); the table shows the median wall time of each. ``facr --help``, ``facr au …`` and
``facr graph …`` build only their own command's parser and import neither torch nor the other commands'
dependencies (tests/test_cli_lazy.py asserts it).

    python benchmarks/bench_cli_startup.py [--runs 5] [--json] [--no-append]

Floor (exit 1 above it): ``facr --help`` median ≤ 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import ROOT, append_section, check_floor, run  # noqa: E402 - after the path line

FLOOR_HELP_S = 1.0
COMMANDS = {  # label -> arguments of facr (None: the bare interpreter)
    "python -c pass (the interpreter alone)": None,
    "facr --help": ["--help"],
    "facr au list": ["au", "list"],
    "facr graph validate graphs/emfacs.json": ["graph", "validate", "graphs/emfacs.json"],
    "facr train reasoner --help (imports torch)": ["train", "reasoner", "--help"],
}


def facr_command() -> list[str]:
    """The ``facr`` console script installed beside this interpreter, else ``python -m facr.cli``."""
    script = Path(sys.executable).with_name("facr")
    return [str(script)] if script.exists() else [sys.executable, "-m", "facr.cli"]


def median_seconds(argv: list[str], runs: int) -> float:
    """Median wall time of ``runs`` fresh processes of ``argv`` (each must exit 0)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5, help="processes per command (default 5; the median is shown)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-append", action="store_true", help="do not append the table to BENCHMARKS.md")
    args = p.parse_args(argv)
    facr = facr_command()
    seconds = {label: median_seconds([sys.executable, "-c", "pass"] if rest is None else [*facr, *rest], args.runs)
               for label, rest in COMMANDS.items()}
    help_s = seconds["facr --help"]
    rows = [f"| `{label}` | {s:.3f} | {s / help_s:.2f} |" for label, s in seconds.items()]
    table = "\n".join(["| command | seconds (median of %d) | × facr --help |" % args.runs, "| --- | --- | --- |",
                       *rows])
    notes = (f"Each a fresh process of `{' '.join(Path(c).name for c in facr)}`; floor: `facr --help` ≤ "
             f"{FLOOR_HELP_S:g} s.")
    if not args.no_append:
        append_section("facr start-up: --help and the light commands", table, notes)
    print(json.dumps({"seconds": seconds, "runs": args.runs}, indent=2) if args.json else f"{table}\n\n{notes}")
    return check_floor("facr --help median seconds", help_s, FLOOR_HELP_S, at_most=True)


if __name__ == "__main__":
    sys.exit(run(main))
