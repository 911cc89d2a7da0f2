"""Stage 2 training: teach the soft prompt and the AU tokens to say which AUs the decision rests on.

The reasoner (frozen) runs once over the training records. Every face gives its factual row and
do(z_k = 0) rows — one per AU of its target, plus ``extra_interventions`` others drawn at random —
each with its own stated emotion (the head's argmax under the intervention) and its own plan
(:class:`facr.verbalizer.plan.RationalePlan`: the invoked AUs that row's latent shows, largest
effect first, and the probability of the stated emotion), so the soft prompt learns to follow z
rather than the class. The target text realises the plan in one of the templates, AUs in FACS form
("<AU12> (lip corner puller)"), ending on the emotion statement.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from facr.config import apply_overrides, from_dict, load_yaml, save_config
from facr.errors import FacrError
from facr.flags import add_fields, given
from facr.utils import write_json
from facr.verbalizer.model import Verbalizer, VerbalizerConfig, save_verbalizer
from facr.verbalizer.plan import TEMPLATES, RationalePlan


def rationale_target(aus: list[str], emotion: str, rng: random.Random, probability: float | None = None) -> str:
    """A rationale naming exactly ``aus`` (as AU tokens, in FACS form) for ``emotion``, in one of the templates."""
    return RationalePlan(aus, emotion, probability).text(index=rng.randrange(len(TEMPLATES)), token=True)


@dataclass
class VerbalizerTrainConfig:
    """A Stage-2 run. Load from YAML with :func:`load_verbalizer_train_config`."""

    # metadata: the flags of `facr train verbalizer` and recipes/train_verbalizer.py (facr.flags)
    reasoner: str = field(default="demo-out/experiment/cells/facr/seed0/fixed", metadata={
        "help": "a reasoner checkpoint or run folder"})
    data: str = field(default="demo-out/synth", metadata={"help": "dataset folder"})
    format: str | None = None
    split: str = "train"
    limit: int | None = field(default=512, metadata={"help": "training faces the reasoner is run on"})
    extra_interventions: int = 2  # do(z_k = 0) rows per face on AUs outside its target (besides one per target AU)
    fluent_targets: bool = field(default=True, metadata={
        "help": "train on the wordings the frozen backbone itself reads most fluently (the better half of "
                "each plan shape's realisations by its NLL on sample plans); off: all of them, uniformly"})
    verbalizer: VerbalizerConfig = field(default_factory=VerbalizerConfig)
    lr: float = field(default=3e-3, metadata={"help": "learning rate"})
    batch_size: int = field(default=8, metadata={"help": "rows per optimizer step"})
    max_steps: int = field(default=100, metadata={"help": "optimizer steps"})
    mixed_precision: str = "no"
    seed: int = field(default=0, metadata={"help": "random seed"})
    out: str = field(default="runs/verbalizer", metadata={"help": "run folder"})

    def __post_init__(self):
        for name in ("batch_size", "max_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.extra_interventions <= 64:
            raise ValueError(f"extra_interventions must be in [0, 64], got {self.extra_interventions}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be > 0, got {self.lr}")


def load_verbalizer_train_config(path=None, overrides: dict | None = None) -> VerbalizerTrainConfig:
    data = apply_overrides(load_yaml(path) if path else {}, overrides, path)
    return from_dict(VerbalizerTrainConfig, data, None if path is None else str(path))


def build_examples(cfg: VerbalizerTrainConfig) -> tuple[dict, list[dict]]:
    """Run the frozen reasoner over the training records: (reasoner info, the training rows). A row
    is a face's factual latent or one of its do(z_k = 0) latents (module docstring), with its z, its
    stated emotion and its plan; ``face`` and ``au`` (−1: factual) say which it is."""
    from facr.audit.auditors import AuditRequest, run_reasoner_pass
    from facr.audit.rationale import intervention_rows
    from facr.causal import graph_signs

    run = run_reasoner_pass(AuditRequest(model=cfg.reasoner, data=cfg.data, format=cfg.format, split=cfg.split,
                                         limit=cfg.limit, oracle=False, ci=False))
    ev, mcfg = run.evaluation, run.model.config
    head = run.model.to("cpu").eval().latent_head()
    own = graph_signs(run.own_graph, mcfg.aus, mcfg.classes)
    rows = intervention_rows(head, torch.from_numpy(ev.z), list(mcfg.classes), own, list(mcfg.aus))
    rng = random.Random(cfg.seed)
    K = len(mcfg.aus)
    examples = []
    for r0 in range(0, len(rows), K + 1):  # a face's factual row, then its K do() rows
        target = rows.plans[r0].aus
        others = [k for k in range(K) if mcfg.aus[k] not in target]
        chosen = [mcfg.aus.index(a) for a in target] + rng.sample(others, min(cfg.extra_interventions, len(others)))
        for r in [r0] + [r0 + 1 + k for k in chosen]:
            plan = rows.plans[r]
            invoked = [mcfg.aus[k] for k in torch.nonzero(rows.allowed[r]).flatten()]
            examples.append({"z": rows.z[r].tolist(), "emotion": plan.emotion, "probability": plan.probability,
                             "named": plan.aus, "against": plan.against, "invoked": invoked,
                             "face": int(rows.face[r]), "au": int(rows.au[r])})
    info = {"aus": ev.aus, "classes": ev.classes, "n": len(examples), "n_faces": len(ev.labels),
            "graph": run.own_graph.name}
    return info, examples


def plan_shape(plan: RationalePlan) -> str:
    """Which realisations a plan has: ``none`` (T empty), ``support``, ``contrast`` or ``against``
    (the index of a realisation means the same wording for every plan of a shape)."""
    n_against, n_support = len(plan.against), len(plan.aus) - len(plan.against)
    return "none" if not plan.aus else "contrast" if n_against and n_support else "against" if n_against else "support"


def fluent_realisations(plans: list[RationalePlan], nll, per_shape: int = 8,
                        rng: random.Random | None = None) -> dict[str, list[int]]:
    """Per plan shape, the realisation indices the backbone reads most fluently: for up to
    ``per_shape`` sample plans of the shape, every realisation is scored by ``nll(texts, emotions)``
    (the frozen backbone's mean per-token NLL, :meth:`Verbalizer.fluency_nll`), and the better half
    by mean NLL is kept (at least one). Training on those only makes the soft prompt prefer wordings
    the LM itself finds natural; which it picks for a face is still its own choice."""
    rng = rng or random.Random(0)
    by_shape: dict[str, list[RationalePlan]] = {}
    for plan in plans:
        by_shape.setdefault(plan_shape(plan), []).append(plan)
    out = {}
    for shape, group in sorted(by_shape.items()):
        sample = rng.sample(group, min(per_shape, len(group)))
        n = len(sample[0].realisations())
        texts = [p.text(index=i) for p in sample for i in range(n)]
        scores = nll(texts, [p.emotion for p in sample for _ in range(n)])
        mean = [sum(scores[j * n + i] for j in range(len(sample))) / len(sample) for i in range(n)]
        out[shape] = sorted(sorted(range(n), key=lambda i: mean[i])[:max(1, n // 2)])
    return out


def train_verbalizer(cfg: VerbalizerTrainConfig, progress: bool = True, overwrite: bool = False) -> dict:
    """Train the verbalizer as ``cfg`` says; writes ``<out>/verbalizer`` (the checkpoint),
    ``config.json``, ``examples.json`` (a few generations) and ``metrics.json``. The run folder ``out``
    holds one run: an earlier one is replaced whole only with ``overwrite=True``, a folder facr did not
    write never (:func:`facr.outputs.run_dir`, claimed by the main process)."""
    from accelerate import Accelerator

    from facr.outputs import run_dir
    from facr.utils import fresh_accelerator_state

    fresh_accelerator_state()
    accelerator = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=cfg.mixed_precision)
    with contextlib.ExitStack() as claim:
        if accelerator.is_main_process:  # the one writer of the run folder
            claim.enter_context(run_dir(cfg.out, "verbalizer-run", overwrite=overwrite,
                                        inputs=[cfg.reasoner, cfg.data, cfg.verbalizer.backbone]))
        return _train_verbalizer(cfg, progress, accelerator)


def _train_verbalizer(cfg: VerbalizerTrainConfig, progress: bool, accelerator) -> dict:
    """The run of :func:`train_verbalizer`, in its claimed run folder."""
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    from facr.verbalizer.backbones import load_backbone

    set_seed(cfg.seed)
    info, examples = build_examples(cfg)
    if not examples:
        raise FacrError(cfg.data, f"no records in split {cfg.split!r} to train the verbalizer on")
    vcfg = replace(cfg.verbalizer, aus=info["aus"], classes=info["classes"], reasoner=cfg.reasoner)
    lm, tok = load_backbone(vcfg.backbone, load_in_4bit=vcfg.load_in_4bit)
    model = Verbalizer(vcfg, lm, tok)
    rng = random.Random(cfg.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=cfg.lr)
    model, optimizer = accelerator.prepare(model, optimizer)
    inner = accelerator.unwrap_model(model)
    out = Path(cfg.out)
    if accelerator.is_main_process:
        save_config(cfg, out / "config.json")
    order = list(range(len(examples)))
    losses, t0 = [], time.perf_counter()
    plans_of = [RationalePlan(b["named"], b["emotion"], b["probability"], b["against"]) for b in examples]
    fluent: dict[str, list[int]] = {}
    if cfg.fluent_targets:  # counted in the training time: it is part of training
        was_training = inner.training
        inner.eval()
        with torch.no_grad():
            fluent = fluent_realisations(plans_of, inner.fluency_nll, rng=random.Random(cfg.seed))
        inner.train(was_training)
    bar = tqdm(total=cfg.max_steps, desc="train verbalizer", unit="step",
               disable=not (progress and accelerator.is_main_process), dynamic_ncols=True)
    rank, world = accelerator.process_index, accelerator.num_processes
    step = 0
    while step < cfg.max_steps:
        rng.shuffle(order)
        mine = order[rank::world]  # each process its own share of the faces
        for j in range(max(1, len(mine) // cfg.batch_size)):  # full batches (one short one if that is all)
            batch = [examples[i] for i in mine[j * cfg.batch_size:(j + 1) * cfg.batch_size]]
            z = torch.tensor([b["z"] for b in batch], device=accelerator.device)
            plans = [plans_of[i] for i in mine[j * cfg.batch_size:(j + 1) * cfg.batch_size]]
            targets = [inner.plan_ids(p, rng.choice(fluent.get(plan_shape(p)) or range(len(p.realisations()))))
                       for p in plans]
            ids, att, lab = inner.instruction_batch([b["emotion"] for b in batch], targets)
            loss = model(z, ids.to(accelerator.device), att.to(accelerator.device), lab.to(accelerator.device)).loss
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
            step += 1
            losses.append(float(loss.detach()))
            bar.update(1)
            bar.set_postfix({"loss": f"{losses[-1]:.3f}"}, refresh=False)
            if step >= cfg.max_steps:
                break
    bar.close()
    accelerator.wait_for_everyone()
    metrics: dict = {}
    if accelerator.is_main_process:
        save_verbalizer(inner, out / "verbalizer", overwrite=True)
        inner.eval()
        sample = [b for b in examples if b["au"] < 0][:8]
        for b in sample:  # what examples.json stores (and a reload reproduces)
            b["z"] = [round(v, 6) for v in b["z"]]
        z = torch.tensor([b["z"] for b in sample], device=accelerator.device)
        texts = inner.generate(z, [b["emotion"] for b in sample],
                               plans=[RationalePlan(b["named"], b["emotion"], b["probability"], b["against"])
                                      for b in sample])
        shown = [{"emotion": b["emotion"], "probability": b["probability"], "invoked": b["invoked"],
                  "target_aus": b["named"], "rationale": t,
                  "named": inner.named_aus(t), "z": [round(v, 6) for v in b["z"]]} for b, t in zip(sample, texts)]
        write_json(out / "examples.json", shown)
        k = max(1, len(losses) // 10)
        metrics = {"backbone": vcfg.backbone, "out": str(out), "steps": step, "num_processes": world,
                   "n_examples": len(examples), "n_faces": info["n_faces"],
                   "loss_first": sum(losses[:k]) / k, "loss_last": sum(losses[-k:]) / k,
                   "seconds": round(time.perf_counter() - t0, 1),
                   "exact_named_set": sum(set(s["named"]) == set(s["target_aus"]) for s in shown) / len(shown),
                   "fluent_realisations": fluent}
        write_json(out / "metrics.json", metrics)
    accelerator.wait_for_everyone()
    return metrics


# the VerbalizerTrainConfig fields the flags set (flags, help and defaults from the dataclasses: facr.flags)
FLAG_FIELDS = ("reasoner", "data", "verbalizer.backbone", "out", "max_steps", "verbalizer.load_in_4bit", "limit",
               "seed", "lr", "batch_size")


def add_verbalizer_arguments(parser) -> None:
    """The flags shared by ``facr train verbalizer`` and ``recipes/train_verbalizer.py``."""
    parser.add_argument("--config", default=None, help="YAML (fields of facr.verbalizer.train.VerbalizerTrainConfig)")
    add_fields(parser, VerbalizerTrainConfig, FLAG_FIELDS)
    parser.add_argument("--overwrite", action="store_true", help="replace the earlier run in --out")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_from_args(args) -> dict:
    """Train as the parsed flags say (a flag left out keeps the --config file's value, else the default)."""
    cfg = load_verbalizer_train_config(args.config, given(args, VerbalizerTrainConfig, FLAG_FIELDS))
    return train_verbalizer(cfg, progress=not args.no_progress, overwrite=args.overwrite)
