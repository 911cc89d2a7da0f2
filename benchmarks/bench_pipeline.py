"""Training throughput end to end (``facr.train.train``: decode + augment + DataLoader + accelerate step)
against a bare PyTorch loop over preloaded, normalised tensors — same model, same objective, same
batch size, same number of steps.

The FACR objective (batched do()) is on in both. ``facr train``'s figure is its own
``train_images_per_s`` (time inside the training loop; validation and the final audit excluded).

    python benchmarks/bench_pipeline.py [--arch resnet-10-slim] [--n 2000] [--epochs 3] [--batch 64]
                                        [--num-workers 0] [--repeats 3] [--json]

Floor (issue 5): pipeline_over_bare ≥ 0.85; the script exits 1 below it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import append_section, check_floor, run  # noqa: E402
from facr.config import from_dict  # noqa: E402
from facr.data.synth import SynthConfig, write_synth  # noqa: E402


def bare_loop(data: Path, arch: str, batch: int, steps: int, seed: int) -> float:
    """Images/s of a plain loop over tensors already in memory (the ceiling the pipeline is held to)."""
    from facr.data.formats import load
    from facr.data.torch_data import FaceTorchDataset, Task, inverse_frequency_weights
    from facr.graph import load_graph
    from facr.losses import LossWeights, facr_loss
    from facr.models.encoder import EncoderConfig
    from facr.models.reasoner import Reasoner, ReasonerConfig
    from facr.train import graph_signs

    torch.manual_seed(seed)
    records = [r for r in load("synth", data).records if r.split == "train"]
    graph = load_graph(data / "graph.json")
    aus = sorted({a for r in records for a in r.au_presence}, key=lambda a: int(a[2:]))
    classes = ["neutral", "happiness", "sadness", "surprise", "fear", "anger", "disgust"]
    ds = FaceTorchDataset(records, aus, Task("emotion", classes), 112, augment=False)
    x = torch.stack([torch.from_numpy(ds.pixels(i)) for i in range(len(ds))])
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.from_numpy(ds.labels)
    t, m = torch.from_numpy(ds.au_targets), torch.from_numpy(ds.au_mask)
    signs = graph_signs(graph, aus, classes)
    w = inverse_frequency_weights(ds.class_counts())
    model = Reasoner(ReasonerConfig(aus=aus, classes=classes, encoder=EncoderConfig(arch=arch))).to(
        memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    weights = LossWeights()
    n = len(ds)
    done, t0 = 0, None
    for step in range(steps + 2):
        if step == 2:  # two warm-up steps, as the pipeline's first epoch warms up too
            t0, done = time.perf_counter(), 0
        idx = torch.randint(0, n, (batch,))
        out = model(x[idx], effects="batched")
        loss = facr_loss(out.effects, out.z, out.z_logits, y[idx], t[idx], m[idx], signs, weights, w).total
        loss.backward()
        opt.step()
        opt.zero_grad()
        done += batch
    return done / (time.perf_counter() - t0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="resnet-10-slim")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--num-workers", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-append", action="store_true")
    args = ap.parse_args(argv)

    from facr.train import TrainConfig, train

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "synth"
        write_synth(data, SynthConfig(n=args.n, seed=0))
        cfg = from_dict(TrainConfig, {
            "data": {"path": str(data), "val_split": None, "num_workers": args.num_workers, "task": "emotion"},
            "encoder": {"arch": args.arch}, "graph": "truth", "batch_size": args.batch, "epochs": args.epochs,
            "out": str(Path(tmp) / "run"), "seed": 0,
        })
        pipes, bares = [], []
        for r in range(args.repeats):  # alternate the two arms so drift of the machine hits both alike
            result = train(replace(cfg, out=str(Path(tmp) / f"run{r}")), progress=False)
            pipes.append(result.metrics["train_images_per_s"])
            steps = result.metrics["global_step"]
            bares.append(bare_loop(data, args.arch, args.batch, steps, r))
    pipeline, bare = statistics.median(pipes), statistics.median(bares)
    ratio = pipeline / bare
    out = {"arch": args.arch, "batch": args.batch, "steps": steps, "num_workers": args.num_workers,
           "repeats": args.repeats, "pipeline_runs": [round(v, 1) for v in pipes],
           "bare_runs": [round(v, 1) for v in bares],
           "pipeline_images_per_s": round(pipeline, 1), "bare_images_per_s": round(bare, 1),
           "pipeline_over_bare": round(ratio, 3), "floor": 0.85, "meets_floor": ratio >= 0.85}
    print(json.dumps(out, indent=2) if args.json else out)
    if not args.no_append:
        table = ("| model | batch | steps | DataLoader workers | facr train (img/s) | bare loop (img/s) | "
                 "pipeline_over_bare |\n| --- | --- | --- | --- | --- | --- | --- |\n"
                 f"| {args.arch} | {args.batch} | {steps} | {args.num_workers} | {pipeline:.1f} | {bare:.1f} | "
                 f"{ratio:.2f} |")
        append_section(f"Training pipeline vs a bare loop ({args.arch}, 112×112, FACR objective on)", table,
                       "Floor: ≥ 0.85. facr train's figure covers decoding-free record access, augmentation, the "
                       "DataLoader, accelerate and the step; the bare loop indexes preloaded normalised tensors.")
    return check_floor("facr train images/s over a bare loop's (median)", ratio, out["floor"])


if __name__ == "__main__":
    sys.exit(run(main))
