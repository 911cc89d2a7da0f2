"""A reasoner on any front end: the graph-conditioned emotion head trained on AU vectors, not pixels.

The reasoner's head (:func:`facr.models.heads.build_head`: z → ŷ) is trained with the FACR
objective (:func:`facr.losses.facr_loss`: CE + λs·L_sens + λi·L_inv, every Δ_kc through
:func:`facr.causal.intervention_effects`, the one do()) on AU vectors z ∈ [0, 1]^K that a front end
would give, so it reads whatever reads AUs: MediaPipe's blendshapes (:mod:`facr.frontends.mediapipe`),
an OpenFace / py-feat / LibreFace table (:mod:`facr.frontends.tables`), a dataset's AU labels.

Where its AU vectors come from:

* **the benchmark's SCM** (default, no pixels): :func:`facr.data.synth.sample_scene` draws emotions and
  AU intensities (0–5) from the structural causal model of ``facr data synth`` — EMFACS prototypes,
  inhibitions, base rates, co-activations, a pain process — and each intensity becomes z by the
  tables' own rule (:func:`facr.frontends.tables.intensity_to_z`: 0.55 + 0.09·r when present, 0
  when absent), optionally jittered by ``noise`` within its side of 0.5 so that the head sees graded
  values like a real front end's. The head learns AU → emotion **from the SCM, not from people**.
* **a user's labelled AU table** (``--data``): any table :func:`~facr.frontends.tables.read_au_table`
  reads (or a folder of them) with an emotion column.

A checkpoint is a folder: ``model.safetensors`` (the AU and class order in its metadata),
``config.json`` (:class:`HeadConfig`: aus, classes, graph, front end), ``graph.json`` (G) and
``training.json`` (the :class:`HeadTrainConfig` it was trained with, the command, the held-out
figures). :func:`load_head` checks it as :func:`~facr.models.reasoner.load_reasoner` checks a reasoner.

The shipped real-face head (:func:`default_head_path`, ``facr/frontends/assets/realface-head``) is the
one :data:`REALFACE_COMMAND` writes: the SCM, the EMFACS graph, the AUs MediaPipe's front end codes.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from facr import au as au_vocab
from facr.au import ACTIVE
from facr.config import MAX_SEED, check_range, from_dict, save_config, to_dict
from facr.errors import DataFormatError, FacrError
from facr.frontends import FaceReading
from facr.graph import AUGraph, load_graph, save_graph
from facr.losses import LossWeights
from facr.models.heads import z_only_heads
from facr.models.reasoner import MAX_HEAD_HIDDEN, CheckpointError, check_aus_classes

__all__ = ["AUHead", "FRONTENDS", "HeadConfig", "HeadReading", "HeadTrainConfig", "REALFACE_COMMAND",
           "default_head_path", "frontend_aus", "load_default_head", "load_head", "read_faces", "save_head",
           "train_head"]

FRONTENDS = ("scm", "mediapipe", "openface", "openface3", "pyfeat", "libreface")
"""Front ends a head can be trained for: ``scm`` (every AU the benchmark draws), ``mediapipe`` (the AUs
its hand table codes) and the table formats (the AUs each tool codes)."""

HEAD_FILES = ("model.safetensors", "config.json", "graph.json")
Z_HEADS = z_only_heads()  # the reasoner's z-only heads: mlp, linear, graph
REALFACE_DIR = Path(__file__).resolve().parent / "assets" / "realface-head"
REALFACE_COMMAND = ("facr train head --frontend mediapipe --graph emfacs --seed 0 "
                    "--out facr/frontends/assets/realface-head")
"""The command that writes the shipped real-face head (run from the repository root; a test reruns it)."""


def _check_head(head: str) -> None:
    """ValueError naming the field unless ``head`` is a z-only head (an AU head and its training config)."""
    if head not in Z_HEADS:
        raise ValueError(f"head must be {', '.join(Z_HEADS[:-1])} or {Z_HEADS[-1]}, got {head!r}")


# ------------------------------------------------------------------------------ the model
@dataclass
class HeadConfig:
    """An AU head: the AU order of z (K), the classes (C), the graph it was trained against (by name;
    ``graph.json`` holds it), the front end it is for, and the head's shape."""

    aus: list[str]
    classes: list[str]
    graph: str = ""
    frontend: str = "scm"
    head: str = "mlp"  # mlp | linear | graph (the reasoner's z-only heads)
    head_hidden: int = 64
    edges: dict[str, dict[str, int]] | None = None  # head graph: G's edges {class: {AU: ±1}}, its wiring

    def __post_init__(self):
        self.aus = check_aus_classes(self.aus, self.classes)
        _check_head(self.head)
        check_range("head_hidden", self.head_hidden, 1, MAX_HEAD_HIDDEN)
        from facr.models.heads import check_edges

        self.edges = check_edges(self.head, self.edges, self.aus, self.classes)


class AUHead(nn.Module):
    """z → ŷ: the reasoner's emotion head with no encoder in front. ``head`` is what do() intervenes on."""

    z_only = True  # ŷ is a function of z alone (as a reasoner's mlp / linear head)

    def __init__(self, config: HeadConfig):
        super().__init__()
        from facr.models.heads import build_head, config_signs

        self.config = config
        self.head = build_head(config.head, len(config.aus), len(config.classes), config.head_hidden,
                               signs=config_signs(config))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(z)

    def latent_head(self) -> nn.Module:
        """The z → logits function (the same interface as :meth:`facr.models.reasoner.Reasoner.latent_head`)."""
        return self.head


def save_head(model: AUHead, graph: AUGraph, path: str | os.PathLike, *, training: dict | None = None,
              overwrite: bool = False) -> Path:
    """Write the checkpoint folder (``model.safetensors``, ``config.json``, ``graph.json`` and, given,
    ``training.json``), built beside ``path`` and swapped in whole (:func:`facr.outputs.output_dir`)."""
    from safetensors.torch import save_file

    from facr.models.reasoner import checkpoint_metadata
    from facr.outputs import output_dir
    from facr.utils import write_json

    path = Path(path)
    with output_dir(path, "au-head", overwrite=overwrite) as tmp:
        state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / "model.safetensors"), metadata=checkpoint_metadata(model.config, "head"))
        save_config(model.config, tmp / "config.json")
        save_graph(graph, tmp / "graph.json")
        if training is not None:
            write_json(tmp / "training.json", training)
    return path


def load_head(path: str | os.PathLike) -> tuple[AUHead, AUGraph]:
    """Load a head folder written by :func:`save_head`: (model in eval mode, graph). ``config.json`` is
    checked field by field, the weights must be finite, carry the config's AU and class order and fit
    its shapes; every problem is one :class:`~facr.models.reasoner.CheckpointError`."""
    from facr.models.reasoner import check_order, load_checked, read_json_file, read_weights

    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(path, "no such head folder")
    missing = [f for f in HEAD_FILES if not (path / f).exists()]
    if missing:
        raise CheckpointError(path, f"not a facr AU head: missing {', '.join(missing)}")
    config = from_dict(HeadConfig, read_json_file(path / "config.json"), str(path / "config.json"))
    graph = load_graph(path / "graph.json")
    state, metadata = read_weights(path / "model.safetensors")
    if metadata.get("facr") not in (None, "head"):
        raise CheckpointError(path / "model.safetensors", f"holds a facr {metadata['facr']}, not an AU head")
    check_order(metadata, config, path)
    model = AUHead(config)
    load_checked(model, state, path / "model.safetensors")
    return model.eval(), graph


def default_head_path() -> Path:
    """The shipped real-face head's folder (inside the package)."""
    return REALFACE_DIR


def load_default_head() -> tuple[AUHead, AUGraph]:
    """The shipped real-face head: AU → emotion learned from the benchmark's SCM over the AUs
    MediaPipe's front end codes, against the EMFACS graph (see :data:`REALFACE_COMMAND`)."""
    return load_head(REALFACE_DIR)


# ------------------------------------------------------------------------------ reading faces
@dataclass
class HeadReading:
    """One face through a head: z over the head's AUs (``coded`` False where the front end did not
    code the AU: z 0 there), the class probabilities, the emotion ĉ, Δ_kc = ŷ_c − ŷ_c^{do(z_k=0)}
    ([K, C]) and the AUs invoked for ĉ (the top-|Pa(ĉ)| by |Δ_kĉ|, as the audit names them)."""

    reading: FaceReading
    aus: list[str]
    z: np.ndarray
    coded: np.ndarray
    probabilities: dict[str, float]
    emotion: str
    delta: np.ndarray
    invoked: list[str]


def align(readings: Sequence[FaceReading], aus: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """z ``[N, K]`` and coded ``[N, K]`` of ``readings`` in the order ``aus``: an AU a reading does not
    code is 0 (absent to the head) and marked not coded."""
    z = np.zeros((len(readings), len(aus)), dtype=np.float32)
    coded = np.zeros((len(readings), len(aus)), dtype=bool)
    for i, r in enumerate(readings):
        where = {a: k for k, a in enumerate(r.aus)}
        for j, a in enumerate(aus):
            k = where.get(a)
            if k is not None and r.coded[k]:
                z[i, j], coded[i, j] = r.z[k], True
    return z, coded


@torch.no_grad()
def read_faces(model: AUHead, graph: AUGraph, readings: Sequence[FaceReading]) -> list[HeadReading]:
    """Every face of ``readings`` through ``model``: probabilities, ĉ, every do(z_k = 0) in one batched
    head call (:func:`facr.causal.intervention_effects`) and the invoked AUs under ``graph``."""
    from facr.audit.metrics import invoked_aus
    from facr.causal import graph_signs, intervention_effects

    if not readings:
        return []
    aus, classes = model.config.aus, model.config.classes
    z, coded = align(readings, aus)
    eff = intervention_effects(model.eval().head, torch.from_numpy(z))
    probs = torch.softmax(eff.logits, dim=1).numpy()
    predicted = eff.logits.argmax(dim=1)
    invoked = invoked_aus(eff, graph_signs(graph, aus, classes), predicted)
    delta = eff.delta.numpy()
    return [HeadReading(r, list(aus), z[i], coded[i], dict(zip(classes, probs[i].tolist())),
                        classes[int(predicted[i])], delta[i], [aus[k] for k in invoked[i]])
            for i, r in enumerate(readings)]


# ------------------------------------------------------------------------------ training data
def frontend_aus(name: str) -> list[str]:
    """The AUs front end ``name`` codes (:data:`FRONTENDS`)."""
    from facr.data.synth import SYNTH_AUS
    from facr.frontends.tables import FORMAT_AUS

    if name == "scm":
        return list(SYNTH_AUS)
    if name == "mediapipe":
        from facr.frontends.mediapipe import SEEN_AUS  # the table only: mediapipe itself is not imported

        return list(SEEN_AUS)
    if name in FORMAT_AUS:
        return list(FORMAT_AUS[name])
    raise FacrError("--frontend", f"unknown front end {name!r} (choose from {', '.join(FRONTENDS)})")


@dataclass
class AUData:
    """AU vectors with their emotions: z ``[N, K]`` over ``aus``, class indices into ``classes``, the
    unit each row belongs to (a subject, a file: what the held-out split keeps apart) and its split."""

    aus: list[str]
    classes: list[str]
    z: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    split: np.ndarray
    notes: dict = field(default_factory=dict)

    def part(self, name: str) -> "AUData":
        keep = self.split == name
        return replace(self, z=self.z[keep], labels=self.labels[keep], groups=self.groups[keep],
                       split=self.split[keep])


def jitter(z: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """z plus N(0, σ²), kept on its side of the 0.5 threshold ([0, 0.45] absent, [0.55, 1] present):
    graded values like a real front end's, with every AU's presence unchanged."""
    from facr.frontends.tables import PRESENT_FLOOR, STEP

    if sigma <= 0:
        return z
    noisy = z + rng.normal(0.0, sigma, z.shape)
    present = z >= ACTIVE
    absent_top = 5 * STEP  # 0.45: the most an absent AU's z reaches
    out = np.where(present, np.clip(noisy, PRESENT_FLOOR, 1.0), np.clip(np.abs(noisy), 0.0, absent_top))
    return out.astype(np.float32)


def scm_data(aus: Sequence[str], n: int, seed: int, subjects: int = 100, noise: float = 0.0) -> AUData:
    """``n`` faces drawn from the benchmark's SCM (:func:`facr.data.synth.sample_scene`, no pixels):
    their emotions, and z = :func:`~facr.frontends.tables.intensity_to_z` of their AU intensities over
    ``aus`` (which must be AUs the SCM draws), jittered by ``noise``. Splits are the scene's
    subject-disjoint train / val / test."""
    from facr.data.synth import SYNTH_AUS, SynthConfig, sample_scene
    from facr.frontends.tables import intensity_to_z

    scene = sample_scene(SynthConfig(n=n, seed=seed, subjects=subjects))
    cols = [SYNTH_AUS.index(a) for a in aus]
    z = intensity_to_z(scene.intensity[:, cols])
    z = jitter(z, noise, np.random.default_rng([seed, 7]))
    groups = np.asarray(scene.subject_names, dtype=object)[scene.subject]
    return AUData(list(aus), list(scene.config.emotions), z, scene.emotion.astype(np.int64), groups,
                  scene.split.astype(str))


def table_data(path: str | os.PathLike, fmt: str | None, aus: Sequence[str] | None, label_column: str,
               seed: int, test_share: float = 0.15) -> AUData:
    """A user's labelled AU table (or a folder of them, read in name order): z over ``aus`` (default:
    the AUs the tables code) and the class in ``label_column`` (``"Happy Face"`` → ``happy_face``).
    The held-out split keeps whole files apart when there are several, else a seeded ``test_share``
    of the rows (rows of one video are not independent: that figure is optimistic, and says so)."""
    from facr.frontends.tables import read_au_table
    from facr.graph.induce import label_to_class

    path = Path(path)
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".csv", ".tsv")) if path.is_dir() else [path]
    if not files:
        raise DataFormatError(path, "no AU tables (*.csv) in this folder")
    tables = [read_au_table(f, fmt) for f in files]
    order = list(aus) if aus is not None else au_vocab.sort_aus({a for t in tables for a in t.table_aus})
    rows, labels, groups = [], [], []
    for t in tables:
        lacking = [a for a in order if a not in t.table_aus]
        if lacking:
            raise DataFormatError(t.source, f"does not code {', '.join(lacking)} (the head's AUs: {', '.join(order)})")
        for r in t:
            if label_column not in r.extra:
                raise DataFormatError(t.source, f"no label column {label_column!r} (pass --label-column)")
            label = r.extra[label_column].strip()
            if not label:
                raise DataFormatError(t.source, f"frame {r.frame}: empty {label_column!r}")
            rows.append(r)
            labels.append(label_to_class(label))
            groups.append(t.source)
    if not rows:
        raise DataFormatError(path, "no face rows to train on")
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise DataFormatError(path, f"needs at least two emotions in {label_column!r}, found {classes}")
    z, _ = align(rows, order)
    rng = np.random.default_rng(seed)
    if len(files) > 1:
        held = set(rng.permutation([str(f) for f in files])[: max(1, round(test_share * len(files)))])
        split = np.array(["test" if g in held else "train" for g in groups])
        how = "by file"
    else:
        split = np.where(rng.random(len(rows)) < test_share, "test", "train")
        how = "by row (one table: rows of one video are not independent, so the held-out figures are optimistic)"
    skipped = sum(t.skipped for t in tables)
    return AUData(order, classes, z, np.array([classes.index(c) for c in labels]), np.asarray(groups, dtype=object),
                  split, {"held_out": how, "skipped_rows": skipped, "files": len(files), "format": tables[0].format})


# ------------------------------------------------------------------------------ training
@dataclass
class HeadTrainConfig:
    """Everything ``facr train head`` needs. ``data`` None: the benchmark's SCM."""

    # metadata: the flags of `facr train head` (facr.flags)
    data: str | None = field(default=None, metadata={
        "metavar": "TABLE_OR_DIR",
        "help": "a labelled AU table (or a folder of them) to train on; default: the benchmark's SCM"})
    format: str | None = field(default=None, metadata={  # None: recognised from each header
        "help": "the tables' format (default: from the header)"})
    label_column: str = field(default="emotion", metadata={"help": "the tables' emotion column"})
    frontend: str | None = field(default=None, metadata={  # None: the table's format with --data, else scm
        "choices": FRONTENDS, "help": "train over the AUs this front end codes (default: scm, every AU the SCM "
                                      "draws; with --data: the table's AUs)"})
    aus: list[str] | None = None  # None: the front end's AUs (those the SCM draws, for SCM data)
    graph: str = field(default="emfacs", metadata={
        "help": "G: a facr-graph file, emfacs, pspi, or truth (the SCM's graph)"})
    head: str = field(default="mlp", metadata={
        "choices": Z_HEADS, "help": "the emotion head: mlp, linear, or graph (one MLP per class over its parents)"})
    head_hidden: int = 64
    n: int = field(default=20000, metadata={"help": "SCM faces to draw"})
    subjects: int = 100  # SCM subjects (splits are subject-disjoint)
    noise: float = field(default=0.05, metadata={"help": "SCM: σ of z's jitter within its side of 0.5"})
    epochs: int = field(default=30, metadata={"help": "passes over the training faces"})
    batch_size: int = 256
    lr: float = 3e-3
    loss: LossWeights = field(default_factory=LossWeights)
    epsilon: float = 0.1
    seed: int = field(default=0, metadata={"help": "seed of the data and the training"})
    out: str = field(default="runs/head", metadata={"help": "the head's folder"})

    def __post_init__(self):
        from facr.frontends.tables import FORMATS

        if self.format is not None and self.format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if self.frontend is not None and self.frontend not in FRONTENDS:
            raise ValueError(f"frontend must be one of {', '.join(FRONTENDS)}, got {self.frontend!r}")
        if self.aus is not None:
            self.aus = au_vocab.sort_aus(self.aus)
        _check_head(self.head)
        check_range("head_hidden", self.head_hidden, 1, MAX_HEAD_HIDDEN)
        check_range("n", self.n, 100, 1_000_000)
        check_range("subjects", self.subjects, 3, self.n)
        check_range("noise", self.noise, 0.0, 0.5)
        check_range("epochs", self.epochs, 1, 10_000)
        check_range("batch_size", self.batch_size, 1, 1_000_000)
        check_range("seed", self.seed, 0, MAX_SEED)
        if not 0 < self.lr <= 1:
            raise ValueError(f"lr must be in (0, 1], got {self.lr}")
        check_range("epsilon", self.epsilon, 0.0)


@dataclass
class HeadRun:
    out: Path
    metrics: dict
    dropped_aus: list[str]


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Train on one thread: the head is tiny (threads only contend), and one thread gives the same
    floating-point sums every run, which the shipped head's retraining test relies on."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def head_data(cfg: HeadTrainConfig) -> tuple[AUData, AUData, str, list[str]]:
    """The AU vectors ``cfg`` trains on and those it is scored on (held out), the front end's name and
    the AUs left out (the front end codes them, the SCM does not draw them). SCM faces are scored
    without the training jitter: as the tables' rule maps the SCM's intensities."""
    from facr.data.synth import SYNTH_AUS

    if cfg.data is not None:
        aus = cfg.aus or (frontend_aus(cfg.frontend) if cfg.frontend not in (None, "scm") else None)
        data = table_data(cfg.data, cfg.format, aus, cfg.label_column, cfg.seed)
        return data.part("train"), data.part("test"), cfg.frontend or data.notes["format"], []
    frontend = cfg.frontend or "scm"
    wanted = cfg.aus or frontend_aus(frontend)
    aus = [a for a in wanted if a in SYNTH_AUS]
    if not aus:
        raise FacrError("--aus", f"none of {', '.join(wanted)} is drawn by the benchmark's SCM "
                                 f"({', '.join(SYNTH_AUS)})")
    train = scm_data(aus, cfg.n, cfg.seed, cfg.subjects, cfg.noise).part("train")
    test = scm_data(aus, cfg.n, cfg.seed, cfg.subjects, 0.0).part("test")
    return train, test, frontend, [a for a in wanted if a not in aus]


def fit(model: AUHead, data: AUData, signs: torch.Tensor, cfg: HeadTrainConfig, progress: bool = False) -> list[dict]:
    """Train ``model`` on ``data`` (its train split) with the FACR objective; returns the mean loss
    terms of each epoch."""
    from tqdm.auto import tqdm

    from facr.causal import intervention_effects
    from facr.data.torch_data import inverse_frequency_weights
    from facr.losses import facr_loss

    z = torch.from_numpy(data.z)
    y = torch.from_numpy(data.labels)
    class_weight = inverse_frequency_weights(np.bincount(data.labels, minlength=len(data.classes)))
    no_targets = torch.zeros_like(z)  # z is given, not learned: no AU targets (λa has nothing to weigh)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    generator = torch.Generator().manual_seed(cfg.seed)
    history = []
    model.train()
    for epoch in tqdm(range(cfg.epochs), desc="train head", unit="epoch", disable=not progress, dynamic_ncols=True):
        totals: dict[str, float] = {}
        order = torch.randperm(len(y), generator=generator)
        batches = order.split(cfg.batch_size)
        for idx in batches:
            zb, yb = z[idx], y[idx]
            # ŷ and every do(z_k = 0) in one head call; the loss reads Δ from there
            effects = intervention_effects(model.head, zb)
            losses = facr_loss(effects, zb, no_targets[idx], yb, no_targets[idx], no_targets[idx], signs, cfg.loss,
                               class_weight)
            optimizer.zero_grad()
            losses.total.backward()
            optimizer.step()
            for k, v in losses.as_floats().items():
                totals[k] = totals.get(k, 0.0) + v / len(batches)
        history.append({"epoch": epoch, **{k: round(v, 6) for k, v in totals.items()}})
    return history


@torch.no_grad()
def evaluate(model: AUHead, data: AUData, signs: torch.Tensor, epsilon: float = 0.1):
    """The audit's :class:`~facr.audit.evaluate.Evaluation` of ``model`` on ``data``: ŷ, every
    do(z_k = 0), scored against ``signs`` by the same code as a reasoner's."""
    from facr.audit.evaluate import Evaluation
    from facr.causal import intervention_effects

    model.eval()
    eff = intervention_effects(model.head, torch.from_numpy(data.z))
    return Evaluation(classes=list(data.classes), aus=list(data.aus), labels=data.labels, logits=eff.logits.numpy(),
                      cf_logits=eff.cf_logits.numpy(), z=data.z, au_targets=(data.z >= ACTIVE).astype(np.float32),
                      au_mask=np.ones_like(data.z), subjects=np.asarray(data.groups, dtype=str),
                      signs=signs.numpy(), epsilon=epsilon)


SUMMARY = ("n_samples", "accuracy", "macro_f1", "cf_sensitivity", "cf_invariance", "graph_causal_agreement",
           "graph_causal_agreement_signed")


def head_metrics(ev, true_signs: torch.Tensor | None = None) -> dict:
    """The held-out figures a head reports: recognition, counterfactual sensitivity (every parent, the
    paper's; and ``cf_sensitivity_active``: the parents the face shows, the only ones do(z_k = 0) can
    move), invariance, graph agreement, per-class recall, and agreement with the SCM's true graph."""
    summary = ev.summarize()
    out = {k: v for k, v in summary.items() if k in SUMMARY}
    out["cf_sensitivity_active"] = replace(ev, scope="active").summarize()["cf_sensitivity"]
    out["recall"] = {c: v["recall"] for c, v in summary["per_class"].items()}
    if true_signs is not None:
        out["true_graph_agreement"] = ev.summarize(true_signs.numpy())["graph_causal_agreement"]
    return out


def train_head(cfg: HeadTrainConfig, *, progress: bool = True, overwrite: bool = False) -> HeadRun:
    """Train an AU head as ``cfg`` says and write its checkpoint folder to ``cfg.out``."""
    from facr.audit.metrics import parents_from_signs
    from facr.causal import graph_signs
    from facr.data.synth import SynthConfig, true_graph
    from facr.graph import resolve_graph
    from facr.outputs import check_target

    check_target(cfg.out, "au-head", overwrite=overwrite, inputs=[cfg.data])  # before the work, not after
    if cfg.graph == "truth" and cfg.data is not None:
        raise FacrError("--graph", "truth is the SCM's own graph: it needs SCM data (no --data)")
    train, test, frontend, dropped = head_data(cfg)
    if len(train.labels) == 0 or len(test.labels) == 0:
        raise FacrError(cfg.data, "needs faces in both the training and the held-out split")
    truth = true_graph(SynthConfig(n=cfg.n, seed=cfg.seed, subjects=cfg.subjects)) if cfg.data is None else None
    graph = truth if cfg.graph == "truth" else resolve_graph(cfg.graph, also=("truth",))
    signs = graph_signs(graph, train.aus, train.classes)
    edges = parents_from_signs(signs.numpy(), train.aus, train.classes) if cfg.head == "graph" else None
    config = HeadConfig(aus=train.aus, classes=train.classes, graph=graph.name, frontend=frontend, head=cfg.head,
                        head_hidden=cfg.head_hidden, edges=edges)
    with _one_thread():
        torch.manual_seed(cfg.seed)
        model = AUHead(config)
        history = fit(model, train, signs, cfg, progress)
        true_signs = graph_signs(truth, train.aus, train.classes) if truth is not None else None
        metrics = head_metrics(evaluate(model, test, signs, cfg.epsilon), true_signs)
    metrics = {"split": "test", "n_train": int(len(train.labels)), "data": cfg.data or "scm", **train.notes, **metrics}
    training = {"config": to_dict(replace(cfg, out="")), "command": _command(), "dropped_aus": dropped,
                "metrics": _rounded(metrics), "history": history}
    save_head(model.eval(), graph, cfg.out, training=training, overwrite=overwrite)
    return HeadRun(Path(cfg.out), training["metrics"], dropped)


def _command() -> str:
    argv = [os.path.basename(sys.argv[0]) or "python", *sys.argv[1:]] if sys.argv else []
    return shlex.join(argv)


def _rounded(obj):
    if isinstance(obj, float):
        return round(obj, 4)
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rounded(v) for v in obj]
    return obj
