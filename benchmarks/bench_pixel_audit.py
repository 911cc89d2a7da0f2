"""The pixel audit (``facr audit --pixel-cf``) against the plain audit, on the same faces, side by side.

Both arms are the whole ``facr audit`` of a reasoner on the first ``--faces`` test faces of a synth
benchmark (recognition, every do(z_k = 0), the oracle's shortcut figures); the pixel arm adds the
pixel-level interventions (:mod:`facr.audit.pixel`): every active AU removed by re-rendering and each of
the four nuisances changed, every such image through the model. Each arm runs ``--repeats`` times in
alternating order (medians reported). Floor (issue 21): the pixel audit of 480 faces in ≤ 180 s; the
script exits 1 otherwise.

    python benchmarks/bench_pixel_audit.py --model runs/synth/facr --data demo-out/synth [--faces 480]
        [--repeats 1] [--json] [--no-append]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import check_floor, report, run  # noqa: E402

FLOOR_S = 180.0  # the pixel audit of 480 faces, seconds


def timed(request) -> tuple[float, dict]:
    from facr.audit.auditors import audit

    t0 = time.perf_counter()
    metrics = audit(request).metrics
    return time.perf_counter() - t0, metrics


def main(argv=None) -> int:
    from facr.audit.auditors import AuditRequest

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="runs/synth/facr", help="a reasoner run or checkpoint folder")
    p.add_argument("--data", default="demo-out/synth", help="its synth benchmark")
    p.add_argument("--faces", type=int, default=480)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-append", action="store_true", help="do not append to BENCHMARKS.md")
    args = p.parse_args(argv)
    base = dict(model=args.model, data=args.data, split="test", limit=args.faces, ci=False)
    arms = {"plain audit": AuditRequest(**base),
            "--pixel-cf": AuditRequest(**base, options={"pixel_cf": "auto"})}
    times: dict[str, list[float]] = {name: [] for name in arms}
    metrics = {}
    for r in range(args.repeats):
        for name in (list(arms) if r % 2 == 0 else list(arms)[::-1]):
            seconds, metrics[name] = timed(arms[name])
            times[name].append(seconds)
    med = {name: statistics.median(v) for name, v in times.items()}
    px = metrics["--pixel-cf"]
    result = {"faces": px["n_samples"], "seconds": med, "ratio": med["--pixel-cf"] / med["plain audit"],
              "pixel_pairs": px["pixel_n_pairs"], "pixel_cf_method": px["pixel_cf_method"],
              "figures": {k: px[k] for k in ("pixel_au_sensitivity", "pixel_au_leakage", "pixel_cf_sensitivity",
                                             "pixel_cf_invariance", "latent_vs_pixel_agreement", "shortcut_reliance",
                                             "nuisance_z_shift")}}
    table = "\n".join([
        "| arm | seconds (median) | × plain audit |", "| --- | --- | --- |",
        *(f"| {name} | {med[name]:.1f} | {med[name] / med['plain audit']:.2f} |" for name in arms)])
    shift = px["nuisance_z_shift"] or {}
    notes = (f"{result['faces']} test faces, {px['pixel_n_pairs']} face-AU pairs re-rendered "
             f"({px['pixel_cf_method']}) + 4 nuisance changes per face. Floor: the pixel audit ≤ {FLOOR_S:g} s. "
             f"The model's figures: pixel AU sensitivity {px['pixel_au_sensitivity']:.3f}, "
             f"leakage {px['pixel_au_leakage']:.3f}, pixel CF sensitivity {px['pixel_cf_sensitivity']:.3f} / "
             f"invariance {px['pixel_cf_invariance']:.3f}, latent vs pixel agreement "
             f"{px['latent_vs_pixel_agreement']:.3f}, nuisance z shift "
             + ", ".join(f"{k} {v:.3f}" for k, v in shift.items()))
    report(args, result, f"Pixel audit vs plain audit ({result['faces']} faces of {args.data})", table, notes)
    return check_floor(f"pixel audit of {result['faces']} faces, seconds", med["--pixel-cf"], FLOOR_S, at_most=True)


if __name__ == "__main__":
    sys.exit(run(main))
