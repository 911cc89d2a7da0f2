"""Decoding speed with the AU gate on and off: tokens/s of the same verbalizer, same z, same run.

Modes: ``ungated`` (no processor), ``gated`` (the hard gate: the AU-token bias plus the text-level
name guard), ``gated β=10`` (the paper's soft bias alone), ``constrained`` (hard gate + each row's
allowed set). Every call generates exactly ``--tokens`` new tokens per row (``min_new_tokens``), so
the modes do the same amount of work; calls are interleaved, in an order that rotates each round,
and medians reported. Floor: gated ≥ 0.95 × ungated; the script exits 1 below it.

    python benchmarks/bench_gating.py [--verbalizer runs/verbalizer/smollm2] [--backbone smollm2-135m]
                                      [--rows 16] [--tokens 32] [--repeats 5] [--json] [--no-append]

Without ``--verbalizer`` an untrained verbalizer on ``--backbone`` is used (the soft prompt's
weights do not change the cost of a decoding step).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace

import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))

from benchmarks._common import append_section, check_floor  # noqa: E402

FLOOR = 0.95  # gated tokens/s over ungated


def build(args):
    from facr.verbalizer.backbones import load_backbone
    from facr.verbalizer.model import Verbalizer, VerbalizerConfig, load_verbalizer

    if args.verbalizer:
        from facr.audit.rationale import verbalizer_folder

        return load_verbalizer(verbalizer_folder(args.verbalizer) or args.verbalizer)
    aus = ["AU1", "AU2", "AU4", "AU5", "AU6", "AU7", "AU9", "AU10", "AU12", "AU14", "AU15", "AU16", "AU17",
           "AU20", "AU23", "AU24", "AU25", "AU26", "AU43"]
    classes = ["neutral", "happiness", "sadness", "surprise", "fear", "anger", "disgust"]
    lm, tok = load_backbone(args.backbone)
    return Verbalizer(VerbalizerConfig(backbone=args.backbone, aus=aus, classes=classes), lm, tok).eval()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--verbalizer", default=None, help="a trained verbalizer (run folder or checkpoint)")
    ap.add_argument("--backbone", default="smollm2-135m")
    ap.add_argument("--rows", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-append", action="store_true", help="do not append to BENCHMARKS.md")
    args = ap.parse_args(argv)
    v = build(args)
    K = len(v.config.aus)
    torch.manual_seed(0)
    z = torch.rand(args.rows, K)
    allowed = torch.rand(args.rows, K) > 0.5
    emotions = [v.config.classes[i % len(v.config.classes)] for i in range(args.rows)]
    soft = replace(v.config, beta=10.0)
    hard = v.config

    def run(mode: str) -> float:
        v.config = soft if mode == "gated β=10" else hard
        t0 = time.perf_counter()
        v.generate(z, emotions, mode="gated" if mode == "gated β=10" else mode,
                   allowed=allowed if mode == "constrained" else None,
                   max_new_tokens=args.tokens, min_new_tokens=args.tokens)
        return args.rows * args.tokens / (time.perf_counter() - t0)

    modes = ("ungated", "gated", "gated β=10", "constrained")
    run("ungated")  # warm-up
    rates = {m: [] for m in modes}
    for i in range(args.repeats):  # the order rotates each round, so no mode always runs first
        for m in modes[i % len(modes):] + modes[:i % len(modes)]:
            rates[m].append(run(m))
    v.config = hard
    med = {m: statistics.median(r) for m, r in rates.items()}
    result = {"backbone": v.config.backbone, "rows": args.rows, "tokens": args.tokens, "repeats": args.repeats,
              "tokens_per_s": med, "over_ungated": {m: med[m] / med["ungated"] for m in modes}}
    rows = "\n".join(f"| {m} | {med[m]:.1f} | {med[m] / med['ungated']:.3f} |" for m in modes)
    table = "| mode | tokens/s (median) | × ungated |\n| --- | --- | --- |\n" + rows
    if not args.no_append:
        append_section(f"Verbalizer decoding with and without the AU gate ({v.config.backbone}, {args.rows} rows × "
                       f"{args.tokens} tokens)", table,
                       f"Floor: gated ≥ {FLOOR} × ungated. `gated` is the hard gate (AU-token bias + text-level name "
                       "guard, the default); `gated β=10` the soft bias alone.")
    print(json.dumps(result, indent=2) if args.json else table)
    return check_floor("gated / ungated tokens/s (median)", result["over_ungated"]["gated"], FLOOR)


if __name__ == "__main__":
    sys.exit(main())
