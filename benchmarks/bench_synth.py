"""Throughput of the synthetic benchmark generator, end to end (``facr data synth``).

Times ``write_synth``: sampling the SCM, rendering, PNG encoding, AU region masks, building
and saving the Arrow files, the true graph and config.json, into a fresh temporary folder.
Also times rendering alone (one process) to show where the time goes. Medians of ``--repeats``.

    python benchmarks/bench_synth.py [--n 4000] [--size 112] [--repeats 3] [--workers N] [--json]

Floor (issue 4): ≥ 500 images/s at 112×112 on 2 cores; the script exits 1 below it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import append_section, check_floor, run  # noqa: E402
from facr.data import synth as S  # noqa: E402
from facr.data.synth import writer as W  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--style", default="a")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-append", action="store_true", help="do not append to BENCHMARKS.md")
    args = ap.parse_args(argv)

    cfg = S.SynthConfig(n=args.n, size=args.size, seed=0, style=args.style, shortcut=0.9)
    runs = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            summary = S.write_synth(Path(tmp) / "ds", cfg, workers=args.workers)
            size = sum(p.stat().st_size for p in (Path(tmp) / "ds").rglob("*") if p.is_file())
        runs.append({"total_s": summary["total_s"], "render_s": summary["render_s"], "write_s": summary["write_s"],
                     "images_per_s": args.n / summary["total_s"], "mb": size / 1e6})
    # one process, rendering only (no PNG, no Arrow): the renderer's own cost per image
    scene = S.sample_scene(S.SynthConfig(n=min(args.n, 1000), size=args.size, seed=0, style=args.style))
    t = time.perf_counter()
    n1 = sum(len(res[1]) for res in W._run(scene, np.arange(scene.n), False, 1, False))
    render_ms = 1000 * (time.perf_counter() - t) / n1

    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    result = {"n": args.n, "size": args.size, "style": args.style, "repeats": args.repeats,
              "workers": args.workers or W._default_workers(args.n), **{k: round(v, 3) for k, v in med.items()},
              "render_ms_per_image_1proc": round(render_ms, 3), "floor_images_per_s": 500,
              "meets_floor": med["images_per_s"] >= 500}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(result)
    if not args.no_append:
        table = ("| images | side | workers | images/s (median) | total s | render s | write s | MB on disk | "
                 "render ms/img, 1 process |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
                 f"| {args.n} | {args.size} | {result['workers']} | {med['images_per_s']:.0f} | "
                 f"{med['total_s']:.2f} | {med['render_s']:.2f} | {med['write_s']:.2f} | {med['mb']:.0f} | "
                 f"{render_ms:.2f} |")
        append_section(f"Synthetic benchmark generation ({args.n} images, {args.size}×{args.size}, "
                       f"style {args.style})", table,
                       "Floor: ≥ 500 images/s at 112×112 on 2 cores, end to end (render + PNG + masks + "
                       "Arrow + graph). `render s` overlaps the parent's Arrow work.")
    return check_floor("images/s end to end (median)", med["images_per_s"], result["floor_images_per_s"])


if __name__ == "__main__":
    sys.exit(run(main))
