"""``facr audit --model M``: one entry point, a registry of what can be audited.

``M`` is a registered name (``emola``, ``frozen-llm``) or a path; a path is audited by the
auditor that recognises it (a facr reasoner checkpoint, or a run folder holding one in
``model/``). An auditor takes an :class:`AuditRequest` and returns an :class:`AuditResult`
whose ``metrics`` is what ``--json`` prints and ``report.md`` renders.

Register another reasoner with::

    @register_auditor("my-model", help="...")
    def audit_my_model(request: AuditRequest) -> AuditResult: ...
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from facr.audit.options import ReasonerOptions
from facr.errors import FacrError
from facr.registry import Registry


@dataclass
class AuditRequest:
    """What to audit, on which data, against which graph (the flags of ``facr audit``)."""

    # metadata: the flags of `facr audit` (facr.flags)
    model: str = field(metadata={
        "help": "a reasoner or verbalizer checkpoint / run folder, or a registered auditor name"})
    data: str | None = field(default=None, metadata={
        "help": "dataset folder (a facr synth folder, or a real dataset root with --format)"})
    format: str | None = field(default=None, metadata={"help": "dataset format (default: recognised)"})
    graph: str | None = field(default=None, metadata={
        "help": "score against this graph: a facr-graph file, emfacs, pspi, or truth (the dataset's graph.json); "
                "default: the graph the model was trained with"})
    split: str | None = field(default="test", metadata={  # None or "all": every record
        "help": "which split (default test; 'all' for every record)"})
    subjects: list[str] | None = field(default=None, metadata={  # e.g. a LOSO fold's held-out subject
        "flag": "--subject", "action": "append", "help": "only this subject (repeatable)"})
    limit: int | None = field(default=None, metadata={"help": "audit the first N samples of the split"})
    epsilon: float | None = field(default=None, metadata={
        "help": "invariance tolerance ε (default: the run's training value, else 0.1)"})
    margin: float | None = field(default=None, metadata={"help": "sensitivity margin (default ε)"})
    batch_size: int = field(default=128, metadata={"help": "batch size"})
    oracle: bool = field(default=True, metadata={  # oracle figures when the data is the synthetic benchmark
        "flag": "--no-oracle", "help": "skip the synthetic benchmark's oracle figures"})
    ci: bool = True
    seed: int = field(default=0, metadata={"help": "bootstrap seed"})
    progress: bool = False
    max_bad_images: float = field(default=0.05, metadata={
        "help": "the share of the split's images that may be skipped as missing, not decodable or outside the data "
                "root (counted in skipped_images) before the audit stops"})
    options: dict[str, Any] = field(default_factory=dict)  # auditor-specific settings

    def __post_init__(self):
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        if not 0 <= self.max_bad_images <= 1:
            raise ValueError(f"max_bad_images must be a share in [0, 1], got {self.max_bad_images}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        for name in ("epsilon", "margin"):  # NaN or < 0 would score every pair as a pass or a miss
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")


@dataclass
class AuditResult:
    """``metrics``: the JSON object; ``evaluation``: the per-sample pass behind it (for plots), if any."""

    kind: str
    metrics: dict
    evaluation: Any = None


@dataclass
class Auditor:
    name: str
    help: str
    run: Callable[[AuditRequest], AuditResult]
    recognises: Callable[[str], bool] | None = None
    options: type | None = None  # its typed options (facr.audit.options); None: it takes none


# The auditors of `facr audit --model`: this module's reasoner auditor, and those its providers register
# (emola and frozen-llm; the verbalizer's), imported on the first lookup.
AUDITORS: Registry[Auditor] = Registry("auditor", ["facr.audit.auditors", "facr.audit.external",
                                                   "facr.audit.rationale"])


def register_auditor(name: str, help: str, recognises: Callable[[str], bool] | None = None,
                     options: type | None = None):
    """Decorator: make ``facr audit --model NAME`` (or a path ``recognises`` accepts) run ``fn``, which
    reads ``request.options`` as ``options`` (:func:`options_of`)."""
    def wrap(fn: Callable[[AuditRequest], AuditResult]):
        AUDITORS.register(name, Auditor(name, help, fn, recognises, options))
        return fn
    return wrap


def options_of(request: AuditRequest, cls: type):
    """``request.options`` as the auditor's typed options ``cls``: each value checked against its field;
    a setting ``cls`` has no field for (and that is set: not None, not False) is one line naming it."""
    import re
    from dataclasses import fields

    from facr.config import ConfigError, from_dict
    from facr.flags import flag_of

    known = {f.name for f in fields(cls)}
    given = {k: v for k, v in request.options.items() if v is not None and v is not False}
    extra = sorted(set(given) - known)
    if extra:
        takes = ", ".join(sorted(flag_of(cls, k) for k in known))
        raise FacrError("--" + extra[0].replace("_", "-"),
                        f"not an option of the {cls.__name__.removesuffix('Options').lower()} auditor "
                        f"(--model {request.model}); its options: {takes}")
    try:
        return from_dict(cls, given, None, "options")
    except ConfigError as exc:  # "options.pixel_limit must be >= 1, got 0" -> "--pixel-limit: must be >= 1, got 0"
        named = re.match(r"options\.(\w+):? (.*)", exc.message, re.S)
        if named and named.group(1) in known:
            raise FacrError(flag_of(cls, named.group(1)), named.group(2)) from None
        raise FacrError(request.model, exc.message.removeprefix("options: ")) from None


def audit(request: AuditRequest) -> AuditResult:
    """Run the auditor ``request.model`` names (a registered name, or a path an auditor recognises)."""
    auditor = AUDITORS.get(request.model)
    if auditor is None:
        auditor = next((a for _, a in AUDITORS.items() if a.recognises and a.recognises(request.model)), None)
    if auditor is None:
        names = ", ".join(sorted(AUDITORS.names()))
        if Path(request.model).exists():
            raise FacrError(request.model, "not something facr can audit (a reasoner checkpoint or run folder; "
                                           f"or one of: {names})")
        raise FacrError(request.model, f"no such model folder or auditor (auditors: {names})")
    return auditor.run(request)


# ------------------------------------------------------------------ data
def load_audit_records(request: AuditRequest) -> list:
    """The records ``request`` selects: split, then subjects, then the first ``limit``."""
    return select_audit_records(request)[1]


def select_audit_records(request: AuditRequest):
    """``(load result, selected records)``: :func:`load_audit_records` with what the loader
    reported, for the audits that read pixels and count the images they skip."""
    from facr.data import formats

    if request.data is None:
        raise FacrError(None, "--data is required for this model")
    root = Path(request.data)
    if not root.exists():
        raise FacrError(root, "no such dataset folder")
    fmt = formats.resolve_format(root, request.format)
    result = formats.load(fmt, root)
    records = result.records
    if request.split not in (None, "all"):
        available = sorted({str(r.split) for r in records})
        records = [r for r in records if r.split == request.split]
        if not records:
            raise FacrError(root, f"no records in split {request.split!r} (splits here: {', '.join(available)}; "
                                  f"--split all audits every record)")
    if request.subjects:
        wanted = set(request.subjects)
        missing = wanted - {r.subject for r in records}
        if missing:
            raise FacrError(root, f"subject(s) not in the selected records: {', '.join(sorted(missing))}")
        records = [r for r in records if r.subject in wanted]
    if request.limit is not None:
        records = records[: request.limit]
    return result, records


# ------------------------------------------------------------ the facr reasoner
def reasoner_folder(path: str) -> Path | None:
    """The checkpoint folder of a reasoner: ``path`` itself, or ``path/model`` (a training run folder)."""
    p = Path(path)
    if (p / "model.safetensors").exists() and (p / "graph.json").exists():
        return p
    if (p / "model" / "model.safetensors").exists():
        return p / "model"
    return None


def training_epsilon(folder: Path) -> float | None:
    """The ε the reasoner in ``folder`` was trained with (its run's config.json), or None."""
    from facr.utils import loads_json

    cfg = folder.parent / "config.json"
    try:
        value = loads_json(cfg.read_text(encoding="utf-8")).get("epsilon")
    except (OSError, ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, (int, float)) else None


def resolve_audit_graph(spec: str | None, own, data_root: str | None):
    """The graph to score against: the model's own (``None``), ``truth`` (the dataset's graph.json),
    or a facr-graph file / built-in name."""
    from facr.graph import load_graph, resolve_graph

    if spec is None or spec == "own":
        return own
    if spec == "truth":
        path = Path(data_root or ".") / "graph.json"
        if not path.exists():
            raise FacrError(data_root,
                            "--graph truth needs a dataset with its own graph.json (facr data synth writes one)")
        return load_graph(path)
    return resolve_graph(spec, also=("truth", "own"))


@dataclass
class ReasonerPass:
    """A reasoner checkpoint run once over the records a request selects (every do(z_k = 0) kept)."""

    model: Any
    own_graph: Any
    folder: Path
    dataset: Any
    evaluation: Any
    epsilon: float
    skipped: Any = None  # facr.data.images.SkippedImages: the selected images left out


def run_reasoner_pass(request: AuditRequest) -> ReasonerPass:
    """Load the reasoner ``request.model`` names, select the records, and run the one pass that the
    audit and the verbalizer's training targets are both computed from."""
    import torch

    from facr.audit.evaluate import run_reasoner
    from facr.causal import graph_signs
    from facr.data.images import drop_unusable
    from facr.data.torch_data import FaceTorchDataset, Task
    from facr.models.reasoner import load_reasoner

    folder = reasoner_folder(request.model) if request.model != "reasoner" else None
    if folder is None:
        raise FacrError(request.model,
                        "not a facr reasoner checkpoint (no model.safetensors + graph.json here or in model/)")
    model, own_graph = load_reasoner(folder)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = model.to(device)
    cfg = model.config
    classes = list(cfg.classes)
    task = Task("pain", classes) if classes == ["no_pain", "pain"] else Task("emotion", classes)
    loaded, records = select_audit_records(request)
    # every selected image decoded once, up front: the ones that do not are skipped and counted
    (records,), skipped = drop_unusable(loaded, [records], max_bad=request.max_bad_images,
                                        splits=None if request.split in (None, "all") else {request.split})
    ds = FaceTorchDataset(records, cfg.aus, task, cfg.encoder.image_size)
    if len(ds) == 0:
        raise FacrError(request.data, f"no selected record has a {task.kind} label in the model's classes "
                                      f"({', '.join(task.classes)})")
    epsilon = request.epsilon if request.epsilon is not None else (training_epsilon(folder) or 0.1)
    ev = run_reasoner(model, ds, graph_signs(own_graph, cfg.aus, task.classes), epsilon=epsilon,
                      margin=request.margin, batch_size=request.batch_size, progress=request.progress)
    return ReasonerPass(model, own_graph, folder, ds, ev, epsilon, skipped)


@register_auditor("reasoner", help="a facr reasoner checkpoint (the model/ folder of a run, or the run folder)",
                  recognises=lambda path: reasoner_folder(path) is not None, options=ReasonerOptions)
def audit_reasoner(request: AuditRequest) -> AuditResult:
    """Interventional audit of a facr reasoner: one pass, every do(z_k = 0), scored against a graph."""
    from facr.causal import graph_signs

    if request.options.get("rationale"):
        raise FacrError(request.model, "--rationale audits a verbalizer's text: pass a verbalizer checkpoint "
                                       "(facr train verbalizer writes one)")
    options = options_of(request, ReasonerOptions)
    # another graph is read before the pass: a bad --graph is one line before any work
    other = resolve_audit_graph(request.graph, None, request.data)  # None: the model's own, known after loading
    run = run_reasoner_pass(request)
    model, own_graph, ds, ev, epsilon = run.model, run.own_graph, run.dataset, run.evaluation, run.epsilon
    cfg, task = model.config, ds.task
    graph = other or own_graph
    missing = [c for c in task.classes if c not in graph.classes]
    if len(missing) == len(task.classes):
        raise FacrError("--graph", f"{graph.name} has none of the model's classes ({', '.join(task.classes)}): "
                                   "it cannot score this model")
    signs = graph_signs(graph, cfg.aus, task.classes).numpy()
    m = ev.summarize(signs, per_subject=True, ci=request.ci, seed=request.seed)
    m.update({
        "model": str(request.model),
        "model_kind": "reasoner",
        "model_graph": own_graph.name,
        "graph": graph.name,
        "graph_classes_without_parents": missing,
        "data": str(request.data),
        "split": request.split or "all",
        "task": task.kind,
        "classes": task.classes,
        "epsilon": epsilon,
        "margin": request.margin if request.margin is not None else epsilon,
        "intervention": "do(z_k = 0) on the AU latent, every AU, one batched head call",
        "mean_effect": ev.mean_delta.tolist() if len(ds) else [],
        "aus": list(cfg.aus),
        "graph_signs": signs.astype(int).tolist(),
        "skipped_images": run.skipped.to_dict(),
    })
    from facr.audit.oracle import is_synth, oracle_figures

    if request.oracle and request.data and is_synth(request.data) and (request.format in (None, "synth")):
        oracle = oracle_figures(model, ds, ev, request.data, batch_size=request.batch_size)
        for subject, extra in oracle.pop("per_subject").items():
            m["per_subject"][subject].update(extra)
        m["oracle"] = oracle
        m["true_parent_agreement"] = oracle["true_parent_agreement"]
    if options.pixel_cf:
        from facr.audit.pixel import pixel_figures

        # z against the face: do() in pixels (facr.audit.pixel); the shortcut figure beside them
        synth_root = request.data if request.format in (None, "synth") else None
        m.update(pixel_figures(model, ds, ev, signs, data_root=synth_root,
                               method=options.pixel_cf, limit=options.pixel_limit,
                               margin=request.margin, batch_size=request.batch_size, progress=request.progress))
        m["shortcut_reliance"] = (m.get("oracle") or {}).get("shortcut_reliance")
    if options.maps:
        from facr.explain.audit import maps_audit

        maps = maps_audit(model, ds, options.map_methods, seed=request.seed, progress=request.progress)
        m["maps"] = maps
        primary = maps["methods"].get(maps["primary"]) or next(iter(maps["methods"].values()))
        # the model's own map method at the top level: nra, epg, hit_rate overall and per AU
        m.update({"nra": primary["nra"], "epg": primary["epg"], "hit_rate": primary["hit_rate"],
                  "maps_per_au": primary["per_au"]})
    return AuditResult("reasoner", _json_safe(m), ev)


def _json_safe(obj):
    """Plain JSON types; NaN / inf (undefined figures) become None."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj
