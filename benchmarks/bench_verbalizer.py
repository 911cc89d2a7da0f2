"""Stage 2 end to end: train a verbalizer on a frozen reasoner, then audit its rationales; the
training time and the rationale goals of the gated mode, with floors.

    python benchmarks/bench_verbalizer.py --reasoner R --data D --backbone smollm2-135m --out V \\
        [--config recipes/configs/verbalizer_synth.yaml] [--limit 40] [--mode M ...] [--max-steps N] [--json]
        [--no-append]

Trains with ``facr train verbalizer`` (the recipe's code) and times it; audits with
``facr audit --model V --rationale --data D --limit 40`` (the three modes) and reads the gated
figures at the top level of its JSON. Floors (the script exits 1 when one is missed): training time
≤ 600 s for SmolLM2-135M and ≤ 1200 s for any other backbone, and for the gated mode
``named_equals_target`` ≥ 0.95, ``empty_rationale_rate`` ≤ 0.01 (naming nothing although T is not
empty), ``well_formed_rate`` ≥ 0.99, ``named_inactive`` = 0, ``ablated_au_drop_rate`` = 1,
``rationale_sensitivity_nameable`` ≥ 0.95, ``rationale_invariance`` ≥ 0.95 and fluency no worse than
the template (``fluency_vs_template`` ≤ 0).
Run it on a benchmark seed the code was not tuned on.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import append_section, check_floor, run, table_cell  # noqa: E402

# (key, floor, at_most) of the gated audit
GOALS = (("named_equals_target", 0.95, False), ("empty_rationale_rate", 0.01, True), ("well_formed_rate", 0.99, False),
         ("named_inactive", 0, True), ("ablated_au_drop_rate", 1.0, False),
         ("rationale_sensitivity_nameable", 0.95, False), ("rationale_invariance", 0.95, False),
         ("fluency_vs_template", 0.0, True))
SHOWN = ("rationale_sensitivity", "rationale_sensitivity_ceiling", "rationale_sensitivity_nameable",
         "rationale_invariance", "rationale_invariance_strict", "n_invariance_pairs", "n_invariance_pairs_vacuous",
         "ablated_au_drop_rate", "named_inactive", "empty_rationale_rate", "no_au_named_rate", "empty_target_rate",
         "well_formed_rate", "named_equals_target",
         "fluency_nll", "template_nll", "graph_causal_agreement")


def main(argv=None) -> int:
    from facr.cli import main as facr

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reasoner", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--backbone", default="smollm2-135m")
    ap.add_argument("--out", required=True, help="the verbalizer run folder (replaced if facr wrote it)")
    ap.add_argument("--config", default="recipes/configs/verbalizer_synth.yaml")
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--limit", type=int, default=40, help="test faces audited")
    ap.add_argument("--mode", action="append", choices=("gated", "soft", "ungated"), default=None,
                    help="decoding mode(s) audited (repeatable; default: all three)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-append", action="store_true", help="do not append to BENCHMARKS.md")
    args = ap.parse_args(argv)
    out = Path(args.out)
    train = ["train", "verbalizer", "--config", args.config, "--reasoner", args.reasoner, "--data", args.data,
             "--backbone", args.backbone, "--out", str(out), "--overwrite", "--no-progress", "--json"]
    if args.max_steps:
        train += ["--max-steps", str(args.max_steps)]
    t0 = time.perf_counter()
    if facr(train) != 0:
        return 2
    seconds = time.perf_counter() - t0
    if facr(["audit", "--model", str(out), "--rationale", "--data", args.data, "--limit", str(args.limit),
             "--json", "--no-progress", "--out", str(out.parent / f"{out.name}-audit"), "--overwrite",
             *(f"--mode={m}" for m in args.mode or ())]) != 0:
        return 2
    m = json.loads((out.parent / f"{out.name}-audit" / "metrics.json").read_text())  # in the audit's own folder
    budget = 600 if args.backbone == "smollm2-135m" else 1200
    result = {"backbone": args.backbone, "train_seconds": round(seconds, 1), "train_budget_seconds": budget,
              "modes": {mode: {k: m["modes"][mode].get(k) for k in SHOWN} for mode in m["modes"]}}
    modes = list(m["modes"])
    table = "| figure | " + " | ".join(modes) + " |\n|---|" + "---|" * len(modes) + "\n"
    table += "\n".join(f"| {k} | " + " | ".join(table_cell(result["modes"][mode][k]) for mode in modes) + " |"
                       for k in SHOWN)
    table += f"\n\ntraining: {seconds:.0f} s (budget {budget} s)"
    if not args.no_append:
        append_section(f"Verbalizer end to end ({args.backbone}, {args.limit} audited faces of {args.data})", table,
                       "Floors: the gated goals of issue 19 and the training-time budget; see the script's docstring.")
    print(json.dumps(result, indent=2) if args.json else table)
    status = check_floor("training seconds", seconds, budget, at_most=True)
    gated = m["modes"].get("gated", {})
    for key, floor, at_most in GOALS:
        status |= check_floor(f"gated {key}", gated.get(key), floor, at_most=at_most)
    return status


if __name__ == "__main__":
    sys.exit(run(main))
