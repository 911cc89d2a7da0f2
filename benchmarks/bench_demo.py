"""Wall time of ``make demo`` once installed: ``scripts/demo.sh`` (what ``make demo`` runs after its
install step) with ``CHAT=0``, so it ends where the chat would open, timed as a whole and per step
(each ``== step`` header the script prints).

    python benchmarks/bench_demo.py [--out demo-out-bench] [--json] [--no-append]

The ``facr`` console script beside this interpreter is the one the demo calls (``FACR``). Floor (exit
1 above it): the whole demo ≤ 600 s on the machine it runs on; a 2-core machine is the one the floor is
meant for. The output folder is replaced only when this script wrote it (a marker file says so);
any other existing folder stops the script with one line.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import ROOT, check_floor, report, run  # noqa: E402 - after the path line

FLOOR_S = 600.0
MARKER = ".facr-bench-demo"  # in the output folder: this script wrote it, and may replace it
STEP = re.compile(r"^\x1b\[1m== (.*)\x1b\[0m$")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="demo-out-bench", help="the demo's output folder (replaced)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-append", action="store_true", help="do not append the table to BENCHMARKS.md")
    args = p.parse_args(argv)
    out = ROOT / args.out
    marker = out / MARKER
    if out.exists() and not marker.exists():  # never delete a folder this script did not write
        print(f"bench_demo: {out}: exists and was not written by bench_demo; choose another --out", file=sys.stderr)
        return 2
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    marker.touch()
    script = Path(sys.executable).with_name("facr")
    env = {**os.environ, "CHAT": "0", "FACR": str(script), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "MPLBACKEND": "Agg"}
    steps: list[tuple[str, float]] = []
    start = last = time.perf_counter()
    name = "set-up"
    with subprocess.Popen(["bash", "scripts/demo.sh", str(out)], cwd=ROOT, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
        for line in proc.stdout:
            m = STEP.match(line.rstrip("\n"))
            if m:
                now = time.perf_counter()
                steps.append((name, now - last))
                name, last = m.group(1), now
    total = time.perf_counter() - start
    steps.append((name, time.perf_counter() - last))
    if proc.returncode != 0:
        print(f"bench_demo: scripts/demo.sh exited {proc.returncode}", file=sys.stderr)
        return 2
    rows = "\n".join(f"| {step[:90]} | {seconds:.1f} |" for step, seconds in steps if seconds >= 0.05)
    table = f"| step | seconds |\n| --- | --- |\n{rows}\n| **the whole demo (CHAT=0)** | **{total:.1f}** |"
    result = {"seconds": round(total, 1), "steps": {s: round(v, 1) for s, v in steps}}
    report(args, result, "make demo once installed (scripts/demo.sh, CHAT=0)", table,
           f"Floor: the whole demo ≤ {FLOOR_S:g} s (2 cores).")
    shutil.rmtree(out, ignore_errors=True)
    return check_floor("make demo seconds", total, FLOOR_S, at_most=True)


if __name__ == "__main__":
    sys.exit(run(main))
