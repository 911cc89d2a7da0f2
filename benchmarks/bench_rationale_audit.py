"""The rationale audit's regeneration, batched vs one ``generate`` call per face vs one per rationale.

The audit writes K + 1 rationales per face (factual + every do(z_k = 0)). ``batched`` sends them,
and several faces' worth, through ``generate`` ``--batch`` rows at a time (grouped by stated
emotion, so rows share a length); ``one call per face`` sends each face's K + 1 rows in one call (the
natural baseline: one face at a time); ``one call per rationale`` makes one call per row. All three
run the same rows of the same faces, ``--repeats`` times in an order that rotates each round (medians
reported); the script checks that the named AU sets (and texts) are identical. Floor: batched ≥ 3 ×
one call per rationale, with identical named sets; the script exits 1 otherwise. No floor is set
against one call per face (its ratio is reported).

    python benchmarks/bench_rationale_audit.py --verbalizer runs/verbalizer/smollm2 --data demo-out/synth \\
        [--faces 4] [--batch 64] [--repeats 3] [--mode gated] [--json] [--no-append]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))

from benchmarks._common import append_section, check_floor, run  # noqa: E402

FLOOR = 3.0  # batched faces/s over one call per rationale


def main(argv=None) -> int:
    from facr.audit.auditors import AuditRequest, run_reasoner_pass
    from facr.audit.rationale import (
        RationaleRows,
        generate_rows,
        intervention_rows,
        verbalizer_folder,
        verbalizer_reasoner,
    )
    from facr.train import graph_signs
    from facr.verbalizer.model import load_verbalizer

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--verbalizer", default="runs/verbalizer/smollm2")
    ap.add_argument("--data", default="demo-out/synth")
    ap.add_argument("--faces", type=int, default=4)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3, help="rounds of the three arms, each in a rotated order")
    ap.add_argument("--mode", default="gated", choices=("gated", "soft", "ungated"))
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-append", action="store_true", help="do not append to BENCHMARKS.md")
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
                             graph_signs(run.own_graph, cfg.aus, cfg.classes), list(cfg.aus))
    v = load_verbalizer(folder)
    per_face = len(cfg.aus) + 1

    def face_rows(f: int) -> RationaleRows:
        idx = np.flatnonzero(rows.face == f)
        return RationaleRows(rows.z[idx], [rows.emotions[r] for r in idx], rows.allowed[idx], rows.face[idx],
                             rows.au[idx], [rows.plans[r] for r in idx])

    arms = {
        "one call per rationale": lambda: generate_rows(v, rows, args.mode, batch_size=1),
        "one call per face": lambda: [t for f in range(args.faces)
                                      for t in generate_rows(v, face_rows(f), args.mode, batch_size=per_face)],
        "batched": lambda: generate_rows(v, rows, args.mode, batch_size=args.batch),
    }
    generate_rows(v, rows, args.mode, batch_size=args.batch)  # warm-up (first-call allocations)
    names = list(arms)
    seconds, texts = {k: [] for k in names}, {}
    for i in range(args.repeats):
        for name in names[i % len(names):] + names[:i % len(names)]:
            t0 = time.perf_counter()
            texts[name] = arms[name]()
            seconds[name].append(time.perf_counter() - t0)
    timings = {k: statistics.median(v_) for k, v_ in seconds.items()}
    named = {k: [v.named_aus(t) for t in texts[k]] for k in names}
    same_sets = all(named[k] == named["batched"] for k in names)
    same_texts = all(texts[k] == texts["batched"] for k in names)
    speed = {k: args.faces / t for k, t in timings.items()}
    result = {"backbone": v.config.backbone, "faces": args.faces, "rationales": len(rows), "batch": args.batch,
              "mode": args.mode, "repeats": args.repeats, "faces_per_s": speed, "seconds": timings,
              "seconds_per_repeat": seconds,
              "speedup": speed["batched"] / speed["one call per rationale"],
              "speedup_over_one_call_per_face": speed["batched"] / speed["one call per face"],
              "identical_named_sets": same_sets, "identical_texts": same_texts, "floor": FLOOR}
    table = ("| regeneration | seconds (median) | faces/s | rationales/s |\n| --- | --- | --- | --- |\n" + "\n".join(
        f"| {k} | {timings[k]:.1f} | {speed[k]:.3f} | {len(rows) / timings[k]:.2f} |" for k in names)
             + f"\n\nBatched over one call per rationale {result['speedup']:.1f}×, over one call per face "
               f"{result['speedup_over_one_call_per_face']:.1f}×; identical named sets: {same_sets}; identical texts: "
               f"{same_texts}.")
    if not args.no_append:
        append_section(f"Rationale audit regeneration ({v.config.backbone}, {args.mode}, {args.faces} faces × "
                       f"{per_face} rationales)", table,
                       f"Floor: batched ≥ {FLOOR:g} × one call per rationale, with identical named sets "
                       f"(none set against one call per face). Batch {args.batch} rows per generate call; "
                       f"{args.repeats} rounds, order rotated each round.")
    print(json.dumps(result, indent=2) if args.json else table)
    status = check_floor("batched faces/s over one call per rationale (median)", result["speedup"], FLOOR)
    return max(status, check_floor("identical named sets in every arm (1 = yes)", float(same_sets), 1.0))


if __name__ == "__main__":
    sys.exit(run(main))
