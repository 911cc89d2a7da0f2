"""Decoding speed with the AU gate on and off: tokens/s of the same verbalizer, same z, same run.

Modes: ``ungated`` (no processor), ``gated`` (plan and realise, coverage on: every AU of each row's
plan named once in FACS form, the words between them chosen token by token among the phrase
grammar's, the emotion statement forced), ``soft`` (the paper's finite-β bias on the AU tokens
alone). Each row's plan is the AUs its random z shows, at most four. The gated rows stop when their
plan is realised, the others run to
``--tokens``; tokens/s counts the decoding steps each call took (rows × generated length, padding
of finished rows included: what the backbone computed). Calls are interleaved, in an order that
rotates each round, and medians reported. Floor: gated ≥ 0.9 × ungated; the script exits 1 below it.

    python benchmarks/bench_gating.py [--verbalizer runs/verbalizer/smollm2] [--backbone smollm2-135m]
                                      [--rows 16] [--tokens 48] [--repeats 5] [--json] [--no-append]

Without ``--verbalizer`` an untrained verbalizer on ``--backbone`` is used (the soft prompt's
weights do not change the cost of a decoding step).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))

from benchmarks._common import append_section, check_floor, run  # noqa: E402

FLOOR = 0.9  # gated tokens/s over ungated


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
    from facr.verbalizer.plan import RationalePlan

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--verbalizer", default=None, help="a trained verbalizer (run folder or checkpoint)")
    ap.add_argument("--backbone", default="smollm2-135m")
    ap.add_argument("--rows", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-append", action="store_true", help="do not append to BENCHMARKS.md")
    args = ap.parse_args(argv)
    v = build(args)
    K = len(v.config.aus)
    torch.manual_seed(0)
    z = torch.rand(args.rows, K)
    emotions = [v.config.classes[i % len(v.config.classes)] for i in range(args.rows)]
    plans = [RationalePlan([a for a, x in zip(v.config.aus, row) if x >= 0.5][:4], e, 0.75)
             for row, e in zip(z, emotions)]

    def run(mode: str) -> float:
        t0 = time.perf_counter()
        if mode == "gated":
            _, steps = v.generate(z, emotions, mode=mode, plans=plans, return_steps=True)
        else:
            _, steps = v.generate(z, emotions, mode=mode, return_steps=True, max_new_tokens=args.tokens,
                                  min_new_tokens=args.tokens)
        return steps / (time.perf_counter() - t0)

    modes = ("ungated", "gated", "soft")
    run("ungated")  # warm-up
    run("gated")
    rates = {m: [] for m in modes}
    for i in range(args.repeats):  # the order rotates each round, so no mode always runs first
        for m in modes[i % len(modes):] + modes[:i % len(modes)]:
            rates[m].append(run(m))
    med = {m: statistics.median(r) for m, r in rates.items()}
    result = {"backbone": v.config.backbone, "rows": args.rows, "tokens": args.tokens, "repeats": args.repeats,
              "tokens_per_s": med, "over_ungated": {m: med[m] / med["ungated"] for m in modes}}
    rows = "\n".join(f"| {m} | {med[m]:.1f} | {med[m] / med['ungated']:.3f} |" for m in modes)
    table = "| mode | tokens/s (median) | × ungated |\n| --- | --- | --- |\n" + rows
    if not args.no_append:
        append_section(f"Verbalizer decoding with and without the AU gate ({v.config.backbone}, {args.rows} rows × "
                       f"{args.tokens} tokens)", table,
                       f"Floor: gated ≥ {FLOOR} × ungated. `gated` is plan-and-realise with coverage on (the "
                       "default); `soft` the paper's finite-β bias alone; tokens/s counts the decoding steps taken.")
    print(json.dumps(result, indent=2) if args.json else table)
    return check_floor("gated / ungated tokens/s (median)", result["over_ungated"]["gated"], FLOOR)


if __name__ == "__main__":
    sys.exit(run(main))
