"""The Stage-1 training loop on 🤗 accelerate, shared by ``recipes/train_reasoner.py`` and
``facr train reasoner``.

A run folder holds ``config.json`` (the full :class:`TrainConfig`), ``model/`` (the checkpoint a
user loads: ``model.safetensors`` + ``config.json`` + ``graph.json``), ``state/`` (what ``--resume``
needs: weights, optimizer moments and the loop position, all as safetensors + JSON — no pickle),
``history.json`` (per-epoch validation) and ``metrics.json`` (the final held-out figures).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from facr.audit.metrics import parents_from_signs
from facr.causal import graph_signs
from facr.config import MAX_SEED, apply_overrides, check_range, from_dict, load_yaml, save_config
from facr.data.images import SkippedImages, drop_unusable
from facr.data.records import EMOTIONS, FaceRecord, au_order
from facr.data.torch_data import FaceTorchDataset, Task, inverse_frequency_weights, make_loader
from facr.errors import FacrError
from facr.graph import AUGraph, permute, resolve_graph
from facr.grounding import GroundingConfig, build_grounding, grounding_loss
from facr.losses import LossWeights, au_pos_weight, facr_loss, intensity_problem
from facr.models.encoder import MAX_IMAGE_SIZE, EncoderConfig
from facr.models.heads import HEADS
from facr.models.reasoner import MAX_HEAD_HIDDEN, Reasoner, ReasonerConfig, save_reasoner
from facr.outputs import output_dir, run_dir
from facr.utils import fresh_accelerator_state, write_json

GRAPH_NAMES = ("truth", "induced", "induced-ovr", "permuted")  # `graph:` names beside a file or a built-in


@dataclass
class DataConfig:
    """Where the data comes from and how it is split."""

    path: str = "demo-out/synth"
    format: str | None = None  # None: recognise a facr dataset folder by itself
    task: str = "auto"  # auto | emotion | pain (pain = PSPI > 0); auto: pain when the graph's only class is pain
    train_split: str = "train"
    val_split: str | None = "val"
    test_split: str = "test"
    loso_subject: str | None = None  # hold this subject out as the test set (train on the others)
    stride: int = 1  # keep every k-th training frame of each video (the paper's resolution study)
    limit: int | None = None  # at most this many training records (quick runs)
    image_size: int = 112
    augment: bool = True
    num_workers: int = 0
    # the share of the images read that may be skipped (missing, undecodable, outside the data root)
    max_bad_images: float = 0.05

    def __post_init__(self):
        if self.task not in ("auto", "emotion", "pain"):
            raise ValueError(f"task must be auto, emotion or pain, got {self.task!r}")
        if self.stride < 1:
            raise ValueError(f"stride must be >= 1, got {self.stride}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")
        if not 0 <= self.max_bad_images <= 1:
            raise ValueError(f"max_bad_images must be a share in [0, 1], got {self.max_bad_images}")
        check_range("image_size", self.image_size, 16, MAX_IMAGE_SIZE)


@dataclass
class TrainConfig:
    """Everything a Stage-1 run needs. Load from YAML with :func:`load_train_config`."""

    data: DataConfig = field(default_factory=DataConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    head: str = "mlp"  # mlp | linear | graph (Pa(c) only) | agcm (AGCM's concept head, supervised: loss.lambda_m)
    head_hidden: int = 64
    au_readout: str = "pool"  # pool | attention: a spatial map per AU, supervised by its region (facr.models.readout)
    # graph: a facr-graph file, a built-in name (emfacs, pspi), "truth" (the dataset's own graph.json),
    # "induced" (L1 induction on the training split: one-vs-neutral, stability-selected edges),
    # "induced-ovr" (the paper's §3.2: one-vs-rest, every non-zero coefficient an edge) or "permuted"
    # (graph_base with its class rows permuted by graph_seed: the corrupted-graph control).
    graph: str = "induced"
    graph_base: str = "induced"
    graph_seed: int = 0
    # graph: induced also learns AU→AU edges (the paper's G). They do not enter the objective, which
    # uses the direct parents Pa(c) only; false skips them (≈ 20 s less per run on 1000 frames).
    induce_au_edges: bool = True
    faith: str = "on"  # "off": the unfaithfulness control, λs = λi = 0
    loss: LossWeights = field(default_factory=LossWeights)
    grounding: GroundingConfig = field(default_factory=GroundingConfig)  # z grounded in the face (facr.grounding)
    epsilon: float = 0.1  # invariance tolerance of the metrics (and their sensitivity margin)
    lr: float = 1e-3
    # constant | cosine (lr·½(1 + cos(π·step/steps)), to 0 at the last step: the model a run ends with is
    # not one caught mid-swing, which at lr 3e-3 moves validation accuracy by ±0.2 from epoch to epoch)
    lr_schedule: str = "constant"
    weight_decay: float = 0.0
    batch_size: int = 64
    epochs: int = 5
    max_steps: int | None = None
    grad_accum: int = 1
    mixed_precision: str = "no"
    class_weights: str = "balanced"  # balanced | none
    early_stopping: int = 0  # patience in epochs on validation macro-F1; 0 = off
    save_every: int = 0  # also write state/ every N optimizer steps (0 = once per epoch)
    seed: int = 0
    out: str = "runs/reasoner"

    def __post_init__(self):
        if self.faith not in ("on", "off"):
            raise ValueError(f"faith must be 'on' or 'off', got {self.faith!r}")
        if self.head not in HEADS.names():
            raise ValueError(f"head must be one of {', '.join(HEADS.names())}, got {self.head!r}")
        from facr.models.readout import check_readout

        check_readout(self.au_readout)
        if self.head == "agcm" and self.loss.presence_plateau > 0:
            raise ValueError("loss.presence_plateau needs a head that reads z alone (mlp, linear, graph), not agcm")
        if self.class_weights not in ("balanced", "none"):
            raise ValueError(f"class_weights must be 'balanced' or 'none', got {self.class_weights!r}")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ValueError(f"mixed_precision must be no, fp16 or bf16, got {self.mixed_precision!r}")
        for name in ("batch_size", "epochs", "grad_accum"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.epsilon < 0:
            raise ValueError(f"epsilon must be >= 0, got {self.epsilon}")
        check_range("head_hidden", self.head_hidden, 1, MAX_HEAD_HIDDEN)
        for name in ("seed", "graph_seed"):
            check_range(name, getattr(self, name), 0, MAX_SEED)
        for name in ("weight_decay", "early_stopping", "save_every"):
            check_range(name, getattr(self, name), 0)
        if self.grounding.pairs > self.batch_size:
            raise ValueError(f"grounding: {self.grounding.pairs} pair images per batch is more than batch_size "
                             f"({self.batch_size})")

    @property
    def weights(self) -> LossWeights:
        """The loss weights in force: ``faith: off`` zeroes λs and λi."""
        return replace(self.loss, lambda_s=0.0, lambda_i=0.0) if self.faith == "off" else self.loss


def load_train_config(path: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """A :class:`TrainConfig` from a YAML file (or defaults) with dotted overrides (``{"data.path": ...}``)."""
    data = apply_overrides(load_yaml(path) if path else {}, overrides, path)
    return from_dict(TrainConfig, data, None if path is None else str(path))


# ----------------------------------------------------------------------------- data
@dataclass
class Splits:
    train: list[FaceRecord]
    val: list[FaceRecord]
    test: list[FaceRecord]
    dataset_graph: Path | None = None
    skipped: SkippedImages | None = None  # the images left out: missing, undecodable, outside the data root


def load_splits(cfg: DataConfig) -> Splits:
    """Read the records and cut them into train / val / test as ``cfg`` says, without the images
    that cannot be used (counted in ``skipped``; more than ``cfg.max_bad_images`` of them is an error)."""
    from facr.data import formats
    from facr.data.splits import stride as stride_records

    root = Path(cfg.path)
    if not root.exists():
        raise FacrError(root, "no such dataset (make one with: facr data synth --out DIR)")
    fmt = formats.resolve_format(root, cfg.format, "set data.format")
    result = formats.load(fmt, root)
    records = result.records
    if cfg.loso_subject is not None:
        subjects = {r.subject for r in records}
        if cfg.loso_subject not in subjects:
            raise FacrError(root, f"subject {cfg.loso_subject!r} is not in the data ({len(subjects)} subjects)")
        train = [r for r in records if r.subject != cfg.loso_subject]
        val: list[FaceRecord] = []
        test = [r for r in records if r.subject == cfg.loso_subject]
    else:
        train = [r for r in records if r.split == cfg.train_split]
        val = [r for r in records if cfg.val_split and r.split == cfg.val_split]
        test = [r for r in records if r.split == cfg.test_split]
        if not train:
            raise FacrError(root, f"no records in split {cfg.train_split!r}")
    if cfg.stride > 1:
        train = [train[i] for i in stride_records(train, cfg.stride)]
    if cfg.limit is not None:
        train = train[: cfg.limit]
    # every image decoded once, up front: the ones that do not are skipped and counted, not met mid-run
    read = None if cfg.loso_subject is not None else {cfg.train_split, cfg.val_split, cfg.test_split} - {None}
    (train, val, test), skipped = drop_unusable(result, [train, val, test], splits=read, max_bad=cfg.max_bad_images)
    graph_file = root / "graph.json"
    return Splits(train, val, test, graph_file if graph_file.exists() else None, skipped)


def choose_task(cfg: DataConfig, graph_classes: list[str], train: list[FaceRecord]) -> Task:
    """The class order: pain detection (``no_pain``, ``pain``) or the emotions present in training."""
    kind = cfg.task
    if kind == "auto":
        kind = "pain" if graph_classes == ["pain"] else "emotion"
    if kind == "pain":
        return Task("pain", ["no_pain", "pain"])
    present = {r.emotion for r in train if r.emotion is not None}
    classes = [e for e in EMOTIONS if e in present] + sorted(present - set(EMOTIONS))
    if len(classes) < 2:
        raise FacrError(cfg.path, f"emotion task needs at least two emotions in training, found {classes}")
    return Task("emotion", classes)


def unscored_emotions(records: list[FaceRecord], task: Task) -> dict[str, int]:
    """How many of ``records`` (a held-out split) carry each emotion the head has no class for: the
    task's classes are the emotions of the *training* split, so a face of any other emotion cannot
    be scored (the dataset leaves it out) and is counted here instead of vanishing silently."""
    if task.kind != "emotion":
        return {}
    counts: dict[str, int] = {}
    for r in records:
        if r.emotion is not None and r.emotion not in task.classes:
            counts[r.emotion] = counts.get(r.emotion, 0) + 1
    return dict(sorted(counts.items()))


def epoch_line(epoch: int, metrics: dict) -> str:
    """The per-epoch validation line. A figure validation cannot give (no record of a training class,
    no parent pair) reads n/a, never 0: an undefined figure is not a bad one."""
    from facr.audit.report import fmt

    return (f"epoch {epoch}: val n {metrics.get('n_samples', 0)}  acc {fmt(metrics.get('accuracy'))}  "
            f"macro-F1 {fmt(metrics.get('macro_f1'))}  sens {fmt(metrics.get('cf_sensitivity'))}  "
            f"inv {fmt(metrics.get('cf_invariance'))}  agree {fmt(metrics.get('graph_causal_agreement'))}  "
            f"AU-F1 {fmt(metrics.get('au_f1'))}")


def induce_from_records(records: list[FaceRecord], task: Task, seed: int, au_edges: bool = True,
                        settings: dict[str, Any] | None = None, name: str = "induced-train") -> AUGraph:
    """The learned graph from the training records (L1 induction, PSPI fixed for pain).

    ``settings``: :class:`~facr.graph.induce.InductionConfig` fields over facr's default (one-vs-neutral,
    stability selection), e.g. :data:`~facr.graph.induce.PAPER_INDUCTION`.
    """
    from facr.graph.induce import InductionConfig, induce_graph, table_from_records

    try:
        table = table_from_records(records, task.kind, "training split")
    except ValueError as exc:  # e.g. RAF-DB / AffectNet: no AU labels to induce from
        raise FacrError(None, f"graph: induced needs AU labels in training ({exc}); "
                              "use --graph emfacs or a graph file") from None
    if len(table.labels) < 20:
        raise FacrError(None, "graph: induced needs AU-coded training records; "
                              f"only {len(table.labels)} have every AU coded")
    cfg = InductionConfig(**{"n_bootstrap": 20, "seed": seed, "au_edges": au_edges, **(settings or {})})
    return induce_graph(table, cfg, name=name)


def resolve_training_graph(spec: str, base: str, seed: int, splits: Splits, task: Task,
                           au_edges: bool = True) -> AUGraph:
    """The graph G a run is trained against (see :class:`TrainConfig` ``graph``)."""
    if spec == "permuted":
        if base == "permuted":
            raise FacrError(None, "graph_base cannot itself be 'permuted'")
        return permute(resolve_training_graph(base, base, seed, splits, task, au_edges), seed)
    if spec == "induced":
        return induce_from_records(splits.train, task, seed, au_edges)
    if spec == "induced-ovr":
        from facr.graph.induce import PAPER_INDUCTION

        return induce_from_records(splits.train, task, seed, au_edges, PAPER_INDUCTION, name="induced-ovr-train")
    if spec == "truth":
        if splits.dataset_graph is None:
            raise FacrError(None, "graph: truth needs a dataset with its own graph.json (facr data synth makes one)")
        return resolve_graph(splits.dataset_graph)
    return resolve_graph(spec, also=GRAPH_NAMES)


def _graph_classes_hint(cfg: TrainConfig, splits: Splits) -> list[str]:
    """The classes of a graph given as a file, built-in or the dataset's truth (to tell pain from emotion)."""
    spec = cfg.graph_base if cfg.graph == "permuted" else cfg.graph
    if spec in ("induced", "induced-ovr"):
        return []
    if spec == "truth":
        return resolve_graph(splits.dataset_graph).classes if splits.dataset_graph else []
    return resolve_graph(spec, also=GRAPH_NAMES).classes


# ------------------------------------------------------------------------ state io
def _save_state(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, position: dict) -> None:
    """Weights, optimizer moments (safetensors) and the loop position (JSON), swapped in atomically."""
    from safetensors.torch import save_file

    with output_dir(path, "state", overwrite=True) as tmp:
        state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / "model.safetensors"))
        opt = optimizer.state_dict()
        tensors = {"torch_rng": torch.get_rng_state()}
        for pid, st in opt["state"].items():
            for name, value in st.items():
                tensors[f"opt.{pid}.{name}"] = torch.as_tensor(value).detach().contiguous().cpu()
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        write_json(tmp / "position.json", {**position, "param_groups": opt["param_groups"]})


# the loop position a resume needs, and the type of each entry
POSITION = {"epoch": int, "batch_in_epoch": int, "global_step": int, "bad_epochs": int, "history": list,
            "param_groups": list}


def _read_position(file: Path) -> dict:
    try:
        position = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise FacrError(file, f"cannot resume from it: not readable JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(position, dict):
        raise FacrError(file, "cannot resume from it: not a JSON object")
    for key, typ in POSITION.items():
        value = position.get(key)
        if not isinstance(value, typ) or isinstance(value, bool) or (typ is int and value < 0):
            raise FacrError(file, f"cannot resume from it: {key} must be a{' non-negative' if typ is int else ''} "
                                  f"{typ.__name__}, got {value!r}"[:200])
    if position.get("best") is not None and not isinstance(position["best"], (int, float)):
        raise FacrError(file, f"cannot resume from it: best must be a number or null, got {position['best']!r}"[:200])
    return position


def _load_state(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Restore weights, optimizer moments and RNG from ``path`` (``state/``); returns the loop position.
    A damaged file is a :class:`FacrError` naming it."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    def tensors_of(file: Path) -> dict[str, torch.Tensor]:
        try:
            return load_file(str(file))
        except (SafetensorError, OSError, ValueError) as exc:
            raise FacrError(file, f"cannot resume from it: not readable safetensors ({str(exc).splitlines()[0]})") \
                from None

    position = _read_position(path / "position.json")
    weights_file, optimizer_file = path / "model.safetensors", path / "optimizer.safetensors"
    weights, tensors = tensors_of(weights_file), tensors_of(optimizer_file)
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise FacrError(weights_file, f"cannot resume from it: the weights do not fit this run's model "
                                      f"({str(exc).splitlines()[0]})") from None
    params = [p for group in optimizer.param_groups for p in group["params"]]  # state_dict's ids, in order
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, pid, name = (key.split(".", 2) + ["", ""])[:3]
            if not pid.isdigit() or int(pid) >= len(params) or not name or \
                    (value.dim() and value.shape != params[int(pid)].shape):
                raise FacrError(optimizer_file, f"cannot resume from it: tensor {key!r} does not fit this run's model")
            state.setdefault(int(pid), {})[name] = value
    rng = tensors.get("torch_rng")
    if rng is None or rng.dtype != torch.uint8:
        raise FacrError(optimizer_file, "cannot resume from it: no torch_rng (uint8) tensor")
    try:
        optimizer.load_state_dict({"state": state, "param_groups": position.pop("param_groups")})
        torch.set_rng_state(rng)
    except (ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise FacrError(optimizer_file, f"cannot resume from it: the optimizer state does not fit this run "
                                        f"({str(exc).splitlines()[0]})") from None
    return position


# ---------------------------------------------------------------------------- train
@dataclass
class RunResult:
    out: Path
    metrics: dict
    history: list[dict]


def _round(metrics: dict) -> dict:
    return json.loads(json.dumps(metrics, default=float), parse_float=lambda s: round(float(s), 6))


def training_inputs(cfg: TrainConfig) -> list[str | None]:
    """What a run reads from disk (the data, a graph file, local encoder weights): never its output."""
    return [cfg.data.path, cfg.graph, cfg.graph_base, cfg.encoder.pretrained]


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True, overwrite: bool = False) -> RunResult:
    """Train a reasoner as ``cfg`` says into the run folder ``cfg.out``; ``resume=True`` continues the
    run there from its ``state/``. A run folder holds one run: an existing one is replaced (whole)
    only with ``overwrite=True``, and a folder facr did not write never (:func:`facr.outputs.run_dir`,
    claimed by the main process for the whole run)."""
    from accelerate import Accelerator, DataLoaderConfiguration

    out = Path(cfg.out)
    if resume and not (out / "state" / "position.json").exists():
        raise FacrError(out, "nothing to resume: no state/ in this run folder")
    fresh_accelerator_state()
    accelerator = Accelerator(
        cpu=not torch.cuda.is_available(),
        mixed_precision=cfg.mixed_precision,
        gradient_accumulation_steps=cfg.grad_accum,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )
    with contextlib.ExitStack() as claim:
        if accelerator.is_main_process:  # the one writer of the run folder
            claim.enter_context(run_dir(out, "reasoner-run", overwrite=overwrite, resume=resume,
                                        inputs=training_inputs(cfg)))
        return _train(cfg, resume, progress, accelerator)


def _train(cfg: TrainConfig, resume: bool, progress: bool, accelerator) -> RunResult:
    """The run of :func:`train`, in its claimed run folder, phase by phase."""
    from accelerate.utils import set_seed

    set_seed(cfg.seed)
    # data, graph and model: everything the loop reads, built in the seeded order
    run = _build(cfg, accelerator)
    # optimiser and loader on the accelerator; the loop position, from state/ on --resume
    loop = _prepare(cfg, run, accelerator, resume, progress)
    # the loop: an epoch of steps, validation at its end, the position saved after each
    stop = loop.position["global_step"] >= loop.total_steps
    for epoch in range(loop.position["epoch"], cfg.epochs):
        if stop:
            break
        stop, batch_in_epoch = _train_epoch(cfg, run, loop, accelerator, epoch)
        _end_epoch(cfg, run, loop, accelerator, epoch, batch_in_epoch)
        if cfg.early_stopping and loop.position["bad_epochs"] >= cfg.early_stopping:
            break
    loop.bar.close()
    accelerator.wait_for_everyone()
    # the final checkpoint (the best epoch's under early stopping) and its held-out figures
    return _finish(cfg, run, loop, accelerator)


@dataclass
class _Run:
    """What a training run is built from: the data, its task, the graph and the model, the datasets,
    and the loss's extra inputs (class weights, AU positive weights, the circumplex OT cost)."""

    splits: Splits
    task: Task
    graph: AUGraph
    aus: list[str]
    signs: torch.Tensor
    model: Reasoner
    train_ds: FaceTorchDataset
    val_ds: FaceTorchDataset | None
    test_ds: FaceTorchDataset | None
    unscored: dict[str, dict[str, int]]
    make_pairs: Any
    class_weight: torch.Tensor | None
    au_pos: torch.Tensor | None
    ot_cost: torch.Tensor | None


def _build(cfg: TrainConfig, accelerator) -> _Run:
    """Read the data, choose the task, resolve the graph and build the model and the datasets."""
    splits = load_splits(cfg.data)
    if splits.skipped.count and accelerator.is_main_process:
        print(f"facr: warning: {cfg.data.path}: {splits.skipped.summary()}", file=sys.stderr)
    task = choose_task(cfg.data, _graph_classes_hint(cfg, splits), splits.train)
    graph = resolve_training_graph(cfg.graph, cfg.graph_base, cfg.graph_seed, splits, task, cfg.induce_au_edges)

    aus = [a for a in sorted(set(au_order(splits.train)) | set(graph.aus), key=lambda a: int(a[2:]))]
    signs = graph_signs(graph, aus, task.classes)
    encoder = replace(cfg.encoder, image_size=cfg.data.image_size)  # one image size: the data's
    rcfg = ReasonerConfig(aus=aus, classes=task.classes, encoder=encoder, head=cfg.head, head_hidden=cfg.head_hidden,
                          au_readout=cfg.au_readout,
                          edges=parents_from_signs(signs.numpy(), aus, task.classes) if cfg.head == "graph" else None)
    model = Reasoner(rcfg)
    ot_cost = None
    if cfg.loss.circumplex_ot > 0:
        from facr.circumplex import cost_matrix

        try:
            ot_cost = torch.as_tensor(cost_matrix(task.classes, cfg.loss.ot_cost))
        except ValueError as exc:
            raise FacrError(None, f"loss.circumplex_ot: {exc}") from None
    if accelerator.device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    train_ds = FaceTorchDataset(splits.train, aus, task, cfg.data.image_size, cfg.data.augment, cfg.seed,
                                rois=((cfg.head == "agcm" or cfg.au_readout == "attention")
                                      and cfg.loss.lambda_m > 0)
                                or cfg.grounding.occlusion_pairs > 0)
    if (problem := intensity_problem(train_ds.au_intensity, cfg.loss.au_intensity)) is not None:
        raise FacrError(cfg.data.path, problem)
    val_ds = FaceTorchDataset(splits.val, aus, task, cfg.data.image_size) if splits.val else None
    test_ds = FaceTorchDataset(splits.test, aus, task, cfg.data.image_size) if splits.test else None
    unscored = {"val": unscored_emotions(splits.val, task), "test": unscored_emotions(splits.test, task)}
    if accelerator.is_main_process:
        for name, counts in unscored.items():
            if counts:
                print(f"facr: warning: {cfg.data.path}: {sum(counts.values())} of {len(getattr(splits, name))} "
                      f"{name} records have an emotion training lacks "
                      f"({', '.join(f'{e} {n}' for e, n in counts.items())}): not scored "
                      f"(unscored_emotions in metrics.json)", file=sys.stderr)
    if len(train_ds) == 0:
        raise FacrError(cfg.data.path, f"no training record has a {task.kind} label")
    make_pairs = build_grounding(cfg.grounding, train_ds, cfg.data.path, cfg.seed)
    class_weight = inverse_frequency_weights(train_ds.class_counts()) if cfg.class_weights == "balanced" else None
    au_pos = au_pos_weight(train_ds.au_targets, train_ds.au_mask, cfg.loss.au_balance)
    return _Run(splits, task, graph, aus, signs, model, train_ds, val_ds, test_ds, unscored, make_pairs,
                class_weight, au_pos, ot_cost)


@dataclass
class _Loop:
    """The loop's state: the prepared model, optimiser and loader, the loss inputs on the device,
    the position (epoch, batch, step, best score, history) and the throughput counters."""

    model: Any
    unwrapped: Reasoner
    optimizer: torch.optim.Optimizer
    loader: Any
    signs: torch.Tensor
    class_weight: torch.Tensor | None
    au_pos: torch.Tensor | None
    ot_cost: torch.Tensor | None
    total_steps: int
    position: dict
    state_dir: Path
    bar: Any
    seen: int = 0          # training images on this process
    loop_s: float = 0.0    # seconds in the loop, validation excluded

    def save_position(self, accelerator, epoch: int, batch_in_epoch: int) -> None:
        if accelerator.is_main_process:
            _save_state(self.state_dir, self.unwrapped, self.optimizer,
                        {**self.position, "epoch": epoch, "batch_in_epoch": batch_in_epoch})
        accelerator.wait_for_everyone()


def _prepare(cfg: TrainConfig, run: _Run, accelerator, resume: bool, progress: bool) -> _Loop:
    """The optimiser and the loader, prepared with the model; the position (resumed from ``state/``)."""
    from tqdm.auto import tqdm

    out = Path(cfg.out)
    optimizer = torch.optim.Adam(run.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loader = make_loader(run.train_ds, cfg.batch_size, shuffle=True, num_workers=cfg.data.num_workers,
                         drop_last=len(run.train_ds) > cfg.batch_size,
                         generator=torch.Generator().manual_seed(cfg.seed))
    model, optimizer, loader = accelerator.prepare(run.model, optimizer, loader)
    unwrapped = accelerator.unwrap_model(model)
    device = accelerator.device
    on_device = [None if x is None else x.to(device) for x in (run.class_weight, run.au_pos, run.ot_cost)]

    steps_per_epoch = math.ceil(len(loader) / cfg.grad_accum)
    total_steps = cfg.max_steps or steps_per_epoch * cfg.epochs
    position = {"epoch": 0, "batch_in_epoch": 0, "global_step": 0, "best": None, "bad_epochs": 0, "history": []}
    if resume:
        position = _load_state(out / "state", unwrapped, optimizer)
    if accelerator.is_main_process:  # on resume: the same settings, with out where the run is now
        save_config(cfg, out / "config.json")
    bar = tqdm(total=total_steps, initial=position["global_step"], desc="train reasoner", unit="step",
               disable=not (progress and accelerator.is_main_process), dynamic_ncols=True)
    return _Loop(model, unwrapped, optimizer, loader, run.signs.to(device), *on_device, total_steps, position,
                 out / "state", bar)


def _train_epoch(cfg: TrainConfig, run: _Run, loop: _Loop, accelerator, epoch: int) -> tuple[bool, int]:
    """One epoch of optimiser steps (from the saved batch on a resumed run); (stop, batches done)."""
    position = loop.position
    loop.loader.set_epoch(epoch)
    run.train_ds.set_epoch(epoch)
    skip = position["batch_in_epoch"] if epoch == position["epoch"] else 0
    epoch_loader = accelerator.skip_first_batches(loop.loader, skip) if skip else loop.loader
    loop.model.train()
    batch_in_epoch, stop = skip, False
    t_epoch = time.perf_counter()
    for batch in epoch_loader:
        with accelerator.accumulate(loop.model):
            losses, grounded = _step(cfg, run, loop, accelerator, batch, epoch, batch_in_epoch)
        batch_in_epoch += 1
        loop.seen += len(batch["labels"])
        if accelerator.sync_gradients:
            position["global_step"] += 1
            loop.bar.update(1)
            shown = {**losses.as_floats(), **(grounded.as_floats() if grounded is not None else {})}
            loop.bar.set_postfix({k: f"{v:.3f}" for k, v in shown.items()}, refresh=False)
            if cfg.save_every and position["global_step"] % cfg.save_every == 0:
                loop.save_position(accelerator, epoch, batch_in_epoch)
            if position["global_step"] >= loop.total_steps:
                stop = True
                break
    loop.loop_s += time.perf_counter() - t_epoch
    return stop, batch_in_epoch


def _step(cfg: TrainConfig, run: _Run, loop: _Loop, accelerator, batch: dict, epoch: int, batch_in_epoch: int):
    """Forward, the FACR loss (plus the grounding pairs' loss), backward and the optimiser step."""
    # the grounding pairs ride in the same forward (one set of batch-norm statistics), after the batch
    pairs = run.make_pairs(batch["index"].cpu(), epoch, batch_in_epoch) if run.make_pairs else None
    n = len(batch["labels"])
    weights = cfg.weights
    pixels = batch["pixel_values"]
    if pairs is not None:
        pixels = torch.cat([pixels, pairs.images.to(pixels.device)])
    outputs = loop.model(pixels, effects="batched" if weights.faithful else None, detach_z=weights.detach_z)
    grounded = None
    if pairs is not None:
        z_ref = outputs.z[pairs.ref.to(pixels.device)]
        grounded = grounding_loss(outputs.z_logits[n:], outputs.z[n:], z_ref, pairs, cfg.grounding, loop.au_pos)
        outputs = outputs.head_rows(n)
    effects = outputs.effects
    if effects is None:
        from facr.causal import Effects

        effects = Effects(outputs.logits, outputs.logits.unsqueeze(1), 0.0)
    head = loop.unwrapped.latent_head() if weights.presence_plateau > 0 else None
    losses = facr_loss(effects, outputs.z, outputs.z_logits, batch["labels"], batch["au_targets"],
                       batch["au_mask"], loop.signs, weights, loop.class_weight, attention=outputs.attention,
                       roi=batch.get("roi"), roi_mask=batch.get("roi_mask"), ot_cost=loop.ot_cost,
                       au_pos_weight=loop.au_pos, class_rows=batch.get("class_rows"),
                       au_intensity=batch.get("au_intensity"), head=head)
    accelerator.backward(losses.total if grounded is None else losses.total + grounded.total)
    if cfg.lr_schedule == "cosine":  # from the step count alone, so a resumed run follows the same curve
        done = min(loop.position["global_step"] / loop.total_steps, 1.0)
        for group in loop.optimizer.param_groups:
            group["lr"] = cfg.lr * 0.5 * (1 + math.cos(math.pi * done))
    loop.optimizer.step()
    loop.optimizer.zero_grad()
    return losses, grounded


def _end_epoch(cfg: TrainConfig, run: _Run, loop: _Loop, accelerator, epoch: int, batch_in_epoch: int) -> None:
    """Validate a finished epoch (keeping the best checkpoint under early stopping), add it to the
    history and save the position; an epoch cut short by ``max_steps`` only saves the position."""
    from facr.audit.evaluate import evaluate_reasoner

    position = loop.position
    finished_epoch = batch_in_epoch >= len(loop.loader)
    record = {"epoch": epoch, "global_step": position["global_step"]}
    if run.val_ds is not None and finished_epoch and accelerator.is_main_process:
        ev = evaluate_reasoner(loop.unwrapped, run.val_ds, run.signs, epsilon=cfg.epsilon,
                               batch_size=cfg.batch_size * 2)
        record.update({k: v for k, v in ev.metrics.items() if k != "per_class"})
        loop.bar.write(file=sys.stderr, s=epoch_line(epoch, ev.metrics))
        score = ev.metrics["macro_f1"]
        if score is not None:  # None: no validation record of a training class, nothing to watch
            if position["best"] is None or score > position["best"]:
                position["best"], position["bad_epochs"] = score, 0
                if cfg.early_stopping:
                    save_reasoner(loop.unwrapped, run.graph, Path(cfg.out) / "best", overwrite=True)
            else:
                position["bad_epochs"] += 1
    if finished_epoch:
        position["history"].append(record)
        loop.save_position(accelerator, epoch + 1, 0)
    else:
        loop.save_position(accelerator, epoch, batch_in_epoch)


def _finish(cfg: TrainConfig, run: _Run, loop: _Loop, accelerator) -> RunResult:
    """Save ``model/`` (the best epoch's weights under early stopping), evaluate it on the held-out
    split (test, else val; against the dataset's true graph too, where it ships one) and write
    ``metrics.json`` and ``history.json``."""
    from facr.audit.evaluate import evaluate_reasoner

    out = Path(cfg.out)
    metrics: dict = {}
    if accelerator.is_main_process:
        final = loop.unwrapped
        if cfg.early_stopping and (out / "best").exists():
            from facr.models.reasoner import load_reasoner

            final, _ = load_reasoner(out / "best")
        save_reasoner(final, run.graph, out / "model", overwrite=True)
        held_out = run.test_ds if run.test_ds is not None and len(run.test_ds) else run.val_ds
        if held_out is not None:  # an empty one (no record of a training class) still says n_samples 0
            ev = evaluate_reasoner(final, held_out, run.signs, epsilon=cfg.epsilon, batch_size=cfg.batch_size * 2)
            metrics = ev.metrics
            if run.splits.dataset_graph is not None:
                truth = resolve_graph(run.splits.dataset_graph)
                vs_truth = ev.summarize(graph_signs(truth, run.aus, run.task.classes).numpy())
                metrics["true_graph_agreement"] = vs_truth["graph_causal_agreement"]
        metrics = _round({"split": "test" if held_out is run.test_ds else "val", "graph": run.graph.name,
                          "faith": cfg.faith, "num_processes": accelerator.num_processes,
                          "global_step": loop.position["global_step"],
                          "train_images_per_s": (loop.seen * accelerator.num_processes / loop.loop_s
                                                 if loop.loop_s else None),
                          "skipped_images": run.splits.skipped.to_dict(), "unscored_emotions": run.unscored,
                          **metrics})
        write_json(out / "metrics.json", metrics)
        write_json(out / "history.json", loop.position["history"])
    accelerator.wait_for_everyone()
    return RunResult(out, metrics, loop.position["history"])
