"""The rationale audit's regeneration, batched vs one ``generate`` call per intervention.

The audit writes K + 1 rationales per face (factual + every do(z_k = 0)). ``batched`` sends them,
and several faces' worth, through ``generate`` ``--batch`` rows at a time (grouped by stated
emotion, so rows share a length); ``one-at-a-time`` makes one call per rationale. Both run the
same rows of the same faces; the script checks that the named AU sets (and texts) are identical
and reports faces/s. Floor: batched ≥ 3 × one-at-a-time.

    python benchmarks/bench_rationale_audit.py --verbalizer runs/verbalizer/smollm2 --data demo-out/synth \\
        [--faces 4] [--batch 64] [--mode gated] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))

from benchmarks._common import append_section  # noqa: E402


def main(argv=None) -> int:
    from facr.audit.auditors import AuditRequest, run_reasoner_pass
    from facr.audit.rationale import generate_rows, intervention_rows, verbalizer_folder, verbalizer_reasoner
    from facr.train import graph_signs
    from facr.verbalizer.model import load_verbalizer

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--verbalizer", default="runs/verbalizer/smollm2")
    ap.add_argument("--data", default="demo-out/synth")
    ap.add_argument("--faces", type=int, default=4)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--mode", default="gated", choices=("gated", "constrained", "ungated"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    folder = verbalizer_folder(args.verbalizer)
    if folder is None:
        print(f"bench_rationale_audit: {args.verbalizer}: not a verbalizer (train one: facr train verbalizer "
              f"--config recipes/configs/verbalizer_synth.yaml)", file=sys.stderr)
        return 2
    run = run_reasoner_pass(AuditRequest(model=verbalizer_reasoner(folder), data=args.data, limit=args.faces,
                                         oracle=False, ci=False))
    cfg = run.model.config
    rows = intervention_rows(run.model.head.eval(), torch.from_numpy(run.evaluation.z), list(cfg.classes),
                             graph_signs(run.own_graph, cfg.aus, cfg.classes))
    v = load_verbalizer(folder)
    generate_rows(v, rows, args.mode, batch_size=args.batch)  # warm-up (first-call allocations)
    timings, texts = {}, {}
    for name, bs in (("one-at-a-time", 1), ("batched", args.batch)):
        t0 = time.perf_counter()
        texts[name] = generate_rows(v, rows, args.mode, batch_size=bs)
        timings[name] = time.perf_counter() - t0
    same_sets = [v.named_aus(a) for a in texts["batched"]] == [v.named_aus(a) for a in texts["one-at-a-time"]]
    same_texts = texts["batched"] == texts["one-at-a-time"]
    speed = {k: args.faces / t for k, t in timings.items()}
    result = {"backbone": v.config.backbone, "faces": args.faces, "rationales": len(rows), "batch": args.batch,
              "mode": args.mode, "faces_per_s": speed, "seconds": timings,
              "speedup": speed["batched"] / speed["one-at-a-time"], "identical_named_sets": same_sets,
              "identical_texts": same_texts}
    table = ("| regeneration | seconds | faces/s | rationales/s |\n| --- | --- | --- | --- |\n" + "\n".join(
        f"| {k} | {timings[k]:.1f} | {speed[k]:.3f} | {len(rows) / timings[k]:.2f} |" for k in timings)
             + f"\n\nSpeed-up {result['speedup']:.1f}×; identical named sets: {same_sets}; identical texts: {same_texts}.")
    append_section(f"Rationale audit regeneration ({v.config.backbone}, {args.mode}, {args.faces} faces × "
                   f"{len(cfg.aus) + 1} rationales)", table,
                   f"Floor: batched ≥ 3 × one-at-a-time, with identical named sets. Batch {args.batch} rows per "
                   "generate call.")
    print(json.dumps(result, indent=2) if args.json else table)
    return 0 if result["speedup"] >= 3 and same_sets else 1


if __name__ == "__main__":
    sys.exit(main())
