"""Training time of the grounded recipe against today's recipe, side by side on the same benchmark.

Both arms are ``facr train reasoner`` in this process on the same data with the same seed:
``recipes/configs/reasoner_synth.yaml`` (today's) and ``recipes/configs/reasoner_synth_grounded.yaml``
(background randomisation, the attention readout, ``detach_z``, 13 epochs: :mod:`facr.grounding`).
Each arm runs ``--repeats`` times in alternating order; the figure is the training loop's seconds
(images seen / ``train_images_per_s`` of its metrics.json: the loop without the per-epoch validation),
medians reported, and the wall clock of the whole run beside it. Floor (issue 21): the grounded recipe
trains in ≤ 2× the time of today's; the script exits 1 above it.

    python benchmarks/bench_grounded_training.py --data demo-out/synth [--epochs 8] [--repeats 1]
        [--out runs/bench-grounded] [--json] [--no-append]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, check_floor, report, run  # noqa: E402

FLOOR = 2.0  # grounded / today's training time
RECIPES = {"today's (reasoner_synth.yaml)": "reasoner_synth.yaml",
           "grounded (reasoner_synth_grounded.yaml)": "reasoner_synth_grounded.yaml"}


def timed(recipe: str, data: str, out: Path, epochs: int | None, seed: int) -> tuple[float, float, dict]:
    """(loop seconds, wall seconds, metrics) of one training run (``epochs`` None: the recipe's own)."""
    from facr.train import load_train_config, train

    cfg = load_train_config(ROOT / "recipes" / "configs" / recipe,
                            {"data.path": data, "out": str(out), "epochs": epochs, "seed": seed})
    t0 = time.perf_counter()
    metrics = train(cfg, progress=False, overwrite=True).metrics
    wall = time.perf_counter() - t0
    n_train = metrics["global_step"] * cfg.batch_size  # batches of the loop (the last partial one dropped)
    return n_train / metrics["train_images_per_s"], wall, metrics


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="demo-out/synth", help="a synth benchmark (facr data synth)")
    p.add_argument("--epochs", type=int, default=None, help="epochs of each run (default: each recipe's own)")
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--out", default="runs/bench-grounded",
                   help="folder for the runs, one subfolder per recipe (a run facr wrote there is replaced; "
                        "anything else is refused)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-append", action="store_true", help="do not append to BENCHMARKS.md")
    args = p.parse_args(argv)
    loop: dict[str, list[float]] = {name: [] for name in RECIPES}
    wall: dict[str, list[float]] = {name: [] for name in RECIPES}
    metrics = {}
    for r in range(args.repeats):
        for name in (list(RECIPES) if r % 2 == 0 else list(RECIPES)[::-1]):
            out = Path(args.out) / Path(RECIPES[name]).stem
            s, w, metrics[name] = timed(RECIPES[name], args.data, out, args.epochs, args.seed)
            loop[name].append(s)
            wall[name].append(w)
    med = {name: statistics.median(v) for name, v in loop.items()}
    med_wall = {name: statistics.median(v) for name, v in wall.items()}
    base, grounded = list(RECIPES)
    ratio = med[grounded] / med[base]
    result = {"seconds": med, "wall_seconds": med_wall, "ratio": ratio, "epochs": args.epochs,
              "figures": {name: {k: metrics[name].get(k) for k in ("accuracy", "au_f1", "cf_sensitivity",
                                                                    "cf_invariance")} for name in RECIPES}}
    table = "\n".join([
        "| recipe | training loop s (median) | wall s | × today's | test accuracy | AU F1 |",
        "| --- | --- | --- | --- | --- | --- |",
        *(f"| {name} | {med[name]:.1f} | {med_wall[name]:.1f} | {med[name] / med[base]:.2f} | "
          f"{metrics[name]['accuracy']:.3f} | {metrics[name]['au_f1']:.3f} |" for name in RECIPES)])
    epochs = "each recipe's own epochs" if args.epochs is None else f"{args.epochs} epochs each"
    notes = (f"{epochs}, seed {args.seed}, {args.repeats} run(s) per recipe in alternating order. "
             f"Floor: grounded ≤ {FLOOR:g}× today's training loop.")
    report(args, result, f"Grounded vs today's reasoner recipe, training time ({args.data})", table, notes)
    return check_floor("grounded / today's training time", ratio, FLOOR, at_most=True)


if __name__ == "__main__":
    sys.exit(run(main))
