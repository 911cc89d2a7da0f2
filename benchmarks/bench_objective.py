"""Time per training step of the FACR objective against plain CE + BCE, same batch, same run.

(a) plain: CE + λa·BCE (no interventions); (b) faith: + sensitivity + invariance with all K
interventions in one batched head call (facr.causal.intervention_effects); (c) naive: the same
objective with one head call per AU. ResNet-18 at 112×112 by default. The steps are interleaved,
in an order that rotates each round (a b c, b c a, c a b, ...), so neither drift of the machine nor
the position in a round favours one objective; medians of ``--steps`` rounds (default 20: 6 or 8
steps gave ratios that two runs did not reproduce). Floor: (b)/(a) ≤ 1.15; the script exits 1 above it.

    python benchmarks/bench_objective.py [--batch 32] [--steps 20] [--size 112] [--json] [--no-append]
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

FLOOR = 1.15  # (b) / (a): the batched objective costs at most 15 % over CE + BCE
from facr.causal import Effects  # noqa: E402
from facr.graph import emfacs_graph  # noqa: E402
from facr.losses import LossWeights, facr_loss  # noqa: E402
from facr.models.encoder import EncoderConfig  # noqa: E402
from facr.models.reasoner import Reasoner, ReasonerConfig  # noqa: E402
from facr.train import graph_signs  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=20, help="rounds of (a, b, c), each in a rotated order")
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--arch", default="resnet-18")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-append", action="store_true", help="do not append to BENCHMARKS.md")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    graph = emfacs_graph()
    classes = ["neutral", "happiness", "sadness", "surprise", "fear", "anger", "disgust"]
    aus = graph.aus
    encoder = EncoderConfig(arch=args.arch, image_size=args.size)
    model = Reasoner(ReasonerConfig(aus=aus, classes=classes, encoder=encoder))
    model = model.to(memory_format=torch.channels_last).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    signs = graph_signs(graph, aus, classes)
    x = torch.randn(args.batch, 3, args.size, args.size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, len(classes), (args.batch,))
    a = torch.randint(0, 2, (args.batch, len(aus))).float()
    mask = torch.ones_like(a)
    faith, plain = LossWeights(), LossWeights(lambda_s=0.0, lambda_i=0.0)

    def step(mode: str) -> float:
        t0 = time.perf_counter()
        if mode == "plain":
            out = model(x)
            effects = Effects(out.logits, out.logits.unsqueeze(1), 0.0)
            loss = facr_loss(effects, out.z, out.z_logits, y, a, mask, signs, plain)
        else:
            out = model(x, effects="batched" if mode == "faith" else "loop")
            loss = facr_loss(out.effects, out.z, out.z_logits, y, a, mask, signs, faith)
        loss.total.backward()
        opt.step()
        opt.zero_grad()
        return time.perf_counter() - t0

    modes = ("plain", "faith", "naive")
    for m in modes:  # warm-up
        step(m)
    times = {m: [] for m in modes}
    for i in range(args.steps):
        for m in modes[i % len(modes):] + modes[:i % len(modes)]:
            times[m].append(step(m))
    med = {m: statistics.median(v) for m, v in times.items()}
    result = {
        "plain_s": round(med["plain"], 4), "faith_s": round(med["faith"], 4), "naive_s": round(med["naive"], 4),
        "faith_over_plain": round(med["faith"] / med["plain"], 3),
        "naive_over_plain": round(med["naive"] / med["plain"], 3),
        "batch": args.batch, "size": args.size, "arch": args.arch, "K": len(aus), "steps": args.steps,
    }
    table = ("| objective | s / step (median) | × plain |\n| --- | --- | --- |\n"
             f"| (a) CE + BCE | {med['plain']:.3f} | 1.00 |\n"
             f"| (b) FACR, batched do() | {med['faith']:.3f} | {result['faith_over_plain']:.2f} |\n"
             f"| (c) FACR, one head call per AU | {med['naive']:.3f} | {result['naive_over_plain']:.2f} |")
    if not args.no_append:
        append_section(f"Objective cost per training step ({args.arch}, {args.size}×{args.size}, batch {args.batch}, "
                       f"K={len(aus)})", table,
                       f"Floor: (b)/(a) ≤ {FLOOR}. {args.steps} rounds, order rotated each round.")
    print(json.dumps(result, indent=2, sort_keys=True) if args.json else table)
    return check_floor("(b) FACR batched / (a) CE + BCE, s per step", result["faith_over_plain"], FLOOR, at_most=True)


if __name__ == "__main__":
    sys.exit(run(main))
