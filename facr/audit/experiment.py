"""``facr experiment run audits/<name>.yaml``: arms × seeds × folds → train → audit → one table.

An experiment file (see ``audits/README.md``) names a training config, the arms (each a set of
overrides of it), the seeds, the folds (``fixed``: the data's own train/test split; ``loso``:
one held-out subject per fold), what to audit and which arms to compare. Every cell
(arm, seed, fold) is a run folder under ``<out>/cells/``; a cell whose ``audit.json`` exists is
not recomputed, a cell whose training was interrupted resumes from its ``state/``. So a killed
experiment continues where it stopped, and a finished one re-renders its table in seconds.

Statistics follow the paper: the *subject* is the unit. A metric's per-subject value is averaged
over seeds first; arms are compared with the paired Wilcoxon signed-rank test across subjects,
Holm-corrected across the metric family, with the paired Cohen's d and a bootstrap 95% CI of the
mean difference (:mod:`facr.audit.stats`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facr.audit.metrics import mean_defined
from facr.config import ConfigError, from_dict, load_yaml
from facr.errors import FacrError
from facr.utils import write_json


@dataclass
class ArmSpec:
    """One arm: a facr reasoner trained with ``overrides``, or (``model``) another reasoner that is
    only audited — ``emola`` from a generations file, ``frozen-llm`` — with ``options`` (the
    ``facr audit`` flags, e.g. ``{generations: FILE}``; ``graph`` / ``limit`` override the audit's).
    An audited-only arm is deterministic: it has one cell, under the first seed."""

    name: str
    overrides: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if not self.name:
            raise ValueError("name must be a non-empty string")
        if self.model is not None and self.overrides:
            raise ValueError(f"arm {self.name!r}: an audited-only arm (model: {self.model}) takes options, "
                             "not overrides")
        if self.model is None and self.options:
            raise ValueError(f"arm {self.name!r}: options need a model (emola, frozen-llm)")

    @property
    def trained(self) -> bool:
        return self.model is None


@dataclass
class FoldSpec:
    kind: str = "fixed"  # fixed | loso
    subjects: list[str] | None = None  # loso: these subjects (default: every subject of the data)
    max_folds: int | None = None  # loso: the first N subjects only

    def __post_init__(self):
        if self.kind not in ("fixed", "loso"):
            raise ValueError(f"kind must be 'fixed' or 'loso', got {self.kind!r}")
        if self.max_folds is not None and self.max_folds < 1:
            raise ValueError(f"max_folds must be >= 1, got {self.max_folds}")


@dataclass
class DataSpec:
    path: str
    format: str | None = None
    synth: dict[str, Any] | None = None  # make the data with `facr data synth` settings when path is missing


@dataclass
class AuditSpec:
    data: DataSpec | None = None  # default: the training data (a cross-dataset audit names its own)
    split: str = "test"  # fixed folds; LOSO folds audit the held-out subject's records
    graph: str | None = None  # None: each model's own graph; a file / built-in / truth
    limit: int | None = None
    oracle: bool = True


@dataclass
class ExperimentSpec:
    name: str
    train_config: str | None  # a TrainConfig YAML (null: the defaults)
    arms: list[ArmSpec]
    data: DataSpec
    metrics: list[str]
    seeds: list[int] = field(default_factory=lambda: [0])
    folds: FoldSpec = field(default_factory=FoldSpec)
    overrides: dict[str, Any] = field(default_factory=dict)  # applied to every arm
    audit: AuditSpec = field(default_factory=AuditSpec)
    comparisons: list[list[str]] = field(default_factory=list)  # [arm A, arm B]: A vs B, paired on subjects
    per_class: list[str] = field(default_factory=list)  # arms whose per-class table is reported (Table IV)
    per_class_metrics: list[str] = field(default_factory=lambda: ["graph_causal_agreement", "active_au_recall",
                                                                     "active_au_precision"])
    paper: dict[str, dict[str, float]] = field(default_factory=dict)  # the paper's figures, by arm and metric
    description: str = ""
    out: str | None = None
    cache: str | None = None  # a cells folder shared with another experiment (same arm names, same settings)
    bootstrap: int = 5000

    def __post_init__(self):
        if not self.arms:
            raise ValueError("arms must list at least one arm")
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names):
            raise ValueError(f"arms: names must be unique, got {names}")
        if not self.seeds:
            raise ValueError("seeds must list at least one seed")
        for pair in self.comparisons:
            if len(pair) != 2 or any(p not in names for p in pair):
                raise ValueError(f"comparisons: each entry is [arm, arm] of {names}, got {pair}")
        for arm in self.per_class:
            if arm not in names:
                raise ValueError(f"per_class: {arm!r} is not an arm ({names})")
        if not self.metrics:
            raise ValueError("metrics must list at least one audit figure")


def load_experiment(path: str | os.PathLike) -> ExperimentSpec:
    """An :class:`ExperimentSpec` from YAML (errors name the file and the field)."""
    raw = load_yaml(path)
    return from_dict(ExperimentSpec, raw, str(path))


def slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9]+", "-", text.replace("λ", "lambda")).strip("-").lower()
    return s or "arm"


def _settings(config: dict) -> dict:
    """A training config as its config.json holds it (JSON types), less ``out``: what two runs must share."""
    return {k: v for k, v in json.loads(json.dumps(config)).items() if k != "out"}


@dataclass
class Cell:
    arm: ArmSpec
    seed: int
    fold: str  # "fixed" or the held-out subject
    path: Path

    @property
    def done(self) -> bool:
        return (self.path / "audit.json").exists()


class Experiment:
    """A loaded experiment: its cells, how to run them, and how to aggregate them."""

    def __init__(self, spec: ExperimentSpec, source: str | os.PathLike, out: str | os.PathLike | None = None):
        self.spec = spec
        self.source = Path(source)
        self.out = Path(out or spec.out or Path("runs/experiments") / spec.name)

    # -------------------------------------------------------------- data and cells
    def ensure_data(self, data: DataSpec, progress: bool = True) -> None:
        root = Path(data.path)
        if root.exists() or data.synth is None:
            if not root.exists():
                raise FacrError(root, f"no such dataset (experiment {self.source})")
            if data.synth is not None:
                self._check_drawn(root, data)
            return
        from facr.data.synth import write_synth

        config = self._synth_config(data)
        print(f"experiment {self.spec.name}: rendering the benchmark into {root}", file=sys.stderr)
        write_synth(root, config, progress=progress)

    def _check_drawn(self, root: Path, data: DataSpec) -> None:
        """A benchmark folder already at ``data.path`` is used only if ``data.synth`` describes it: a folder drawn
        with other settings (another seed, size or renderer) would silently stand in for the one asked."""
        from facr.data.synth import SynthConfig, read_config

        try:
            drawn = SynthConfig.from_stored(read_config(root)["config"]).to_dict()
        except (FacrError, TypeError, ValueError):
            raise FacrError(root, f"is not the synthetic benchmark data.synth of {self.source} describes "
                                  "(remove it, or point data.path elsewhere)") from None
        asked = self._synth_config(data).to_dict()
        differ = [k for k in asked if asked[k] != drawn.get(k)]
        if differ:
            what = ", ".join(f"{k} {drawn.get(k)!r} where data.synth asks {asked[k]!r}" for k in differ)
            raise FacrError(root, f"was drawn with {what} ({self.source}); remove it, or point data.path elsewhere")

    def _synth_config(self, data: DataSpec):
        """``data.synth`` as a :class:`~facr.data.synth.SynthConfig` (a bad field: one line naming the file)."""
        from facr.data.synth import SynthConfig

        try:
            return SynthConfig.from_dict(dict(data.synth))
        except (TypeError, ValueError) as exc:
            raise ConfigError(self.source, f"data.synth: {exc}") from None

    def folds(self) -> list[str]:
        if self.spec.folds.kind == "fixed":
            return ["fixed"]
        subjects = self.spec.folds.subjects
        if not subjects:
            from facr.data import formats

            root = Path(self.spec.data.path)
            if not root.exists() and self.spec.data.synth:  # not rendered yet: the subjects its config draws
                from facr.data.synth import sample_scene

                subjects = sorted(set(sample_scene(self._synth_config(self.spec.data)).subject_names))
            elif not root.exists():
                raise FacrError(root, "the LOSO folds are the data's subjects, and the data does not exist yet "
                                      "(facr experiment run makes it from data.synth)")
            else:
                fmt = formats.resolve_format(root, self.spec.data.format, "set data.format")
                options = {"decode": False} if fmt == "synth" else {}
                subjects = sorted({r.subject for r in formats.load(fmt, root, **options).records})
        if self.spec.folds.max_folds:
            subjects = subjects[: self.spec.folds.max_folds]
        return list(subjects)

    def cells(self) -> list[Cell]:
        out = []
        folds = self.folds()  # LOSO reads the data's subjects: once, not once per arm and seed
        for arm in self.spec.arms:
            for seed in (self.spec.seeds if arm.trained else self.spec.seeds[:1]):
                for fold in folds:
                    name = "fixed" if fold == "fixed" else f"loso-{slug(fold)}"
                    out.append(Cell(arm, seed, fold, self.cells_dir / slug(arm.name) / f"seed{seed}" / name))
        return out

    @property
    def cells_dir(self) -> Path:
        return Path(self.spec.cache) if self.spec.cache else self.out / "cells"

    def train_config(self, cell: Cell):
        from facr.train import load_train_config

        over = {**self.spec.overrides, **cell.arm.overrides, "data.path": self.spec.data.path,
                "seed": cell.seed, "out": str(cell.path)}
        if self.spec.data.format:
            over["data.format"] = self.spec.data.format
        if cell.fold != "fixed":
            over["data.loso_subject"] = cell.fold
        return load_train_config(self.spec.train_config, over)

    def check_cell(self, cell: Cell) -> None:
        """A cell folder from an earlier run must hold a model trained with today's settings."""
        from facr.config import to_dict

        saved_path = cell.path / "config.json"
        if not cell.arm.trained or not saved_path.exists():
            return
        saved = _settings(json.loads(saved_path.read_text(encoding="utf-8")))
        wanted = _settings(to_dict(self.train_config(cell)))
        if saved != wanted:
            key = next(k for k in sorted(set(saved) | set(wanted)) if saved.get(k) != wanted.get(k))
            raise FacrError(saved_path, f"this cell was trained with other settings ({key}: {saved.get(key)!r} there, "
                                        f"{wanted.get(key)!r} now); remove the folder or rename the arm")

    def audit_request(self, cell: Cell):
        from facr.audit.auditors import AuditRequest

        a = self.spec.audit
        data = a.data or self.spec.data
        options = dict(cell.arm.options)
        graph, limit = options.pop("graph", a.graph), options.pop("limit", a.limit)
        return AuditRequest(model=str(cell.path / "model") if cell.arm.trained else cell.arm.model, data=data.path,
                            format=data.format, graph=graph, split=a.split if cell.fold == "fixed" else "all",
                            subjects=None if cell.fold == "fixed" else [cell.fold], limit=limit,
                            oracle=a.oracle, ci=False, options=options)

    def audit_is_current(self, cell: Cell) -> bool:
        from facr.config import to_dict

        try:
            saved = json.loads((cell.path / "audit.json").read_text(encoding="utf-8")).get("audit_request")
        except (OSError, ValueError):
            return False
        return saved == json.loads(json.dumps(to_dict(self.audit_request(cell))))

    # -------------------------------------------------------------------- running
    def train_cell(self, cell: Cell, progress: bool) -> None:
        from facr.train import train

        # a cell with a training state resumes; one without (killed before its first save) starts over,
        # replacing only a run folder facr wrote (check_cell has confirmed its settings are today's)
        resume = (cell.path / "state" / "position.json").exists()
        train(self.train_config(cell), resume=resume, overwrite=not resume, progress=progress)

    def audit_cell(self, cell: Cell) -> dict:
        from facr.audit.auditors import audit
        from facr.config import to_dict

        request = self.audit_request(cell)
        m = audit(request).metrics
        for key in ("mean_effect", "graph_signs"):
            m.pop(key, None)
        m.update({"arm": cell.arm.name, "seed": cell.seed, "fold": cell.fold, "audit_request": to_dict(request)})
        write_json(cell.path / "audit.json", m)
        return m

    @contextlib.contextmanager
    def claim_cache(self, inputs: list) -> Iterator[None]:
        """Claim a ``cache:`` cells folder for the run, as the experiment folder is claimed: the
        ``cells`` folder of another facr experiment (that experiment's folder is locked meanwhile), or a
        folder facr marked as shared cells (kind ``experiment-cells``; made if absent or empty). Any
        other folder, and one that is, holds or lies inside the data, is refused before anything is
        written: the untrained arms' ``audit.json`` files land there unclaimed otherwise."""
        from facr.outputs import read_marker, run_dir

        cache = Path(os.path.abspath(self.spec.cache)) if self.spec.cache else None
        if cache is None or cache == Path(os.path.abspath(self.out / "cells")):
            yield
            return
        owner = cache.parent if cache.name == "cells" else None
        if owner is not None and (read_marker(owner) or {}).get("kind") == "experiment":
            with run_dir(owner, "experiment", resume=True, inputs=inputs):
                yield
        else:
            with run_dir(cache, "experiment-cells", resume=True, inputs=inputs):
                yield

    def run(self, progress: bool = True) -> dict:
        """Train and audit every unfinished cell, then aggregate; returns the results object.

        The experiment folder is claimed for the whole run (:func:`facr.outputs.run_dir`, kind
        ``experiment``): it continues an experiment facr wrote there, and refuses any other folder and
        one that is, holds or lies inside the data."""
        from facr.outputs import run_dir

        audit_data = self.spec.audit.data
        inputs = [self.spec.data.path, audit_data.path if audit_data else None]
        with run_dir(self.out, "experiment", resume=True, inputs=inputs), self.claim_cache(inputs):
            self.ensure_data(self.spec.data, progress)
            if audit_data is not None:
                self.ensure_data(audit_data, progress)
            cells = self.cells()
            for cell in cells:
                self.check_cell(cell)
            todo = [c for c in cells if not (c.done and self.audit_is_current(c))]
            print(f"experiment {self.spec.name}: {len(cells)} cells ({len(cells) - len(todo)} done, "
                  f"{len(todo)} to run) -> {self.out}", file=sys.stderr)
            t0 = time.perf_counter()
            for i, cell in enumerate(todo, 1):
                print(f"[{i}/{len(todo)}] {cell.arm.name} · seed {cell.seed} · {cell.fold}", file=sys.stderr)
                if cell.arm.trained and not (cell.path / "metrics.json").exists():
                    self.train_cell(cell, progress)
                self.audit_cell(cell)
            results = self.aggregate(cells)
            results["seconds_this_run"] = round(time.perf_counter() - t0, 1)
            self.write(results)
        return results

    # -------------------------------------------------------------- aggregation
    def rows(self, audits: list[tuple[Cell, dict]]) -> list[dict]:
        """One row per (arm, seed, fold, subject) with every audited metric."""
        return [{"arm": cell.arm.name, "seed": cell.seed, "fold": cell.fold, "subject": subject,
                 **{k: figures.get(k) for k in self.spec.metrics}}
                for cell, m in audits for subject, figures in (m.get("per_subject") or {}).items()]

    def aggregate(self, cells: list[Cell]) -> dict:
        from facr.audit.stats import holm, paired_comparison, per_unit_mean

        spec = self.spec
        done = [(c, json.loads((c.path / "audit.json").read_text(encoding="utf-8"))) for c in cells if c.done]
        rows = self.rows(done)
        audits: dict[str, list[dict]] = {}
        by_seed: dict[str, dict[int, list[dict]]] = {}  # arm -> seed -> that seed's cells (its folds)
        for cell, m in done:
            audits.setdefault(cell.arm.name, []).append(m)
            by_seed.setdefault(cell.arm.name, {}).setdefault(cell.seed, []).append(m)
        arms: dict[str, dict] = {}
        by_unit: dict[str, dict[str, dict]] = {}
        for arm in spec.arms:
            arm_rows = [r for r in rows if r["arm"] == arm.name]
            table, units = {}, {}
            for metric in spec.metrics:
                u = per_unit_mean(arm_rows, "subject", metric)
                units[metric] = u
                vals = np.array(list(u.values()), dtype=float)
                # the across-seed deviation: how much a subject's value moves when only the seed changes
                seed_sd = []
                for subject in u:
                    per_seed = [r[metric] for r in arm_rows if r["subject"] == subject and r[metric] is not None]
                    if len(per_seed) > 1:
                        seed_sd.append(float(np.std(per_seed, ddof=1)))
                pooled = [a.get(metric) for a in audits.get(arm.name, []) if a.get(metric) is not None]
                table[metric] = {
                    "mean": float(vals.mean()) if len(vals) else None,
                    "std_subjects": float(vals.std(ddof=1)) if len(vals) > 1 else None,
                    "n_subjects": int(len(vals)),
                    "seed_sd_mean": float(np.mean(seed_sd)) if seed_sd else None,
                    "pooled_mean": float(np.mean(pooled)) if pooled else None,
                    "pooled_std_seeds": float(np.std(pooled, ddof=1)) if len(pooled) > 1 else None,
                    "per_seed": _per_seed(by_seed.get(arm.name, {}), lambda a, k=metric: a.get(k)),
                }
            arms[arm.name] = table
            by_unit[arm.name] = units
        comparisons = []
        for a, b in spec.comparisons:
            tests = {m: paired_comparison(by_unit[a][m], by_unit[b][m], seed=0, n_resamples=spec.bootstrap)
                     for m in spec.metrics}
            adjusted = holm([t["wilcoxon_p"] for t in tests.values()])
            for t, p_holm in zip(tests.values(), adjusted):
                t["wilcoxon_p_holm"] = p_holm
            comparisons.append({"a": a, "b": b, "metrics": tests})
        per_class = {}
        for arm in spec.per_class:
            per_class[arm] = _per_class_mean(audits.get(arm, []), spec.per_class_metrics)
        oracle, oracle_per_seed = {}, {}
        for arm in spec.arms:
            vals = [a.get("oracle") for a in audits.get(arm.name, []) if a.get("oracle")]
            if vals:
                numeric = [k for k, v in vals[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
                oracle[arm.name] = {k: mean_defined([v.get(k) for v in vals]) for k in numeric}
                oracle_per_seed[arm.name] = {
                    k: _per_seed(by_seed[arm.name], lambda a, k=k: (a.get("oracle") or {}).get(k))
                    for k in oracle[arm.name]}
        return {"experiment": spec.name, "source": str(self.source), "description": spec.description,
                "folds": spec.folds.kind, "seeds": spec.seeds, "n_cells": len(cells),
                "n_cells_done": sum(c.done for c in cells), "metrics": spec.metrics, "arms": arms,
                "comparisons": comparisons, "per_class": per_class,
                "oracle": oracle, "oracle_per_seed": oracle_per_seed,
                "audited_only": [a.name for a in spec.arms if not a.trained], "paper": spec.paper,
                # results.json is canonical (sorted keys): the file's arm and class orders travel as lists
                "order": {"arms": [a.name for a in spec.arms], "paper": list(spec.paper), "per_class": list(per_class),
                          "classes": {arm: list(table) for arm, table in per_class.items()},
                          "per_class_metrics": ["n", *spec.per_class_metrics]},
                "rows": rows}

    def write(self, results: dict) -> None:
        from facr.utils import atomic_write_text, dumps_json

        text = dumps_json(results)
        write_json(self.out / "results.json", results)
        # rendered from what the JSON holds, so results.md can be re-derived from results.json alone
        atomic_write_text(self.out / "results.md", render_results(json.loads(text)))


def _per_class_mean(audits: list[dict], metrics: list[str]) -> dict:
    """Per-class figures averaged over an arm's cells (seeds / folds), with the labelled count."""
    out: dict[str, dict] = {}
    for a in audits:
        rows = a.get("per_class") or {}
        for cls in a.get("classes") or rows:  # the model's class order, not the JSON's sorted keys
            row = rows.get(cls, {})
            slot = out.setdefault(cls, {"n": 0, **{m: [] for m in metrics}})
            slot["n"] = max(slot["n"], int(row.get("n_labelled") or 0))
            for m in metrics:
                slot[m].append(row.get(m))
    return {cls: {"n": v["n"], **{m: mean_defined(v[m]) for m in metrics}} for cls, v in out.items()}


def _per_seed(seeds: dict[int, list[dict]], value) -> dict[str, float | None]:
    """One figure per training seed: ``value(audit)`` of each of that seed's cells (pooled over the
    audited split), averaged over its folds. Keys are the seeds as strings (JSON object keys)."""
    return {str(seed): mean_defined([value(a) for a in cells]) for seed, cells in sorted(seeds.items())}


def _f(v, digits=3) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def _p(v) -> str:
    return "n/a" if v is None else (f"{v:.1e}" if v < 1e-3 else f"{v:.3f}")


# the oracle figures rendered (per cell, and per seed)
ORACLE_KEYS = ["true_parent_agreement", "true_parent_agreement_signed", "true_parent_agreement_chance",
               "shortcut_reliance", "prediction_follows_cue"]


def _spread(values: list[float]) -> str:
    """``mean ± s.d. [min, max]`` of one figure across seeds."""
    v = np.array(values, dtype=float)
    return f"{v.mean():.3f} ± {v.std(ddof=1):.3f} [{v.min():.3f}, {v.max():.3f}]"


def _sign(diffs: list[float]) -> str:
    """Whether A − B keeps one sign in every seed: a claim "A > B" is written only where it does."""
    up, down = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
    if up == len(diffs):
        return f"higher in {up}/{len(diffs)}"
    if down == len(diffs):
        return f"lower in {down}/{len(diffs)}"
    return f"**mixed** (higher in {up}/{len(diffs)})"


def _seed_lines(results: dict) -> list[str]:
    """The across-seed section: each arm's figure per training seed (pooled over the audited split,
    the figure one run of `facr train table` / `facr audit` prints) as mean ± s.d. [min, max], and each
    comparison's A − B seed by seed with whether its sign holds in every seed. Empty for one seed."""
    seeds = [str(s) for s in results.get("seeds", [])]
    per_seed = {arm: {m: t.get("per_seed") or {} for m, t in table.items()} for arm, table in results["arms"].items()}
    per_seed_oracle = results.get("oracle_per_seed") or {}
    if len(seeds) < 2 or not any(v for table in per_seed.values() for v in table.values()):
        return []
    figures = [(m, per_seed) for m in results["metrics"]]
    figures += [(k, per_seed_oracle) for k in ORACLE_KEYS
                if k not in results["metrics"] and any(k in o for o in per_seed_oracle.values())]

    fixed = set(results.get("audited_only") or [])

    def by_seed(source, arm, key) -> dict:
        got = source.get(arm, {}).get(key) or {}
        if arm in fixed and len(got) == 1:  # an audited-only arm is deterministic: one figure beside every seed
            return dict.fromkeys(seeds, next(iter(got.values())))
        return got

    def values(source, arm, key):
        return [v for v in (source.get(arm, {}).get(key) or {}).values() if v is not None]

    lines = ["", f"## Across training seeds ({len(seeds)})", "",
             "Each seed's figure pooled over the audited split (what one run's `facr audit` prints): "
             "mean ± s.d. across seeds [min, max]. Oracle figures are the synthetic benchmark's.", "",
             "| figure | " + " | ".join(results["arms"]) + " |", "|---|" + "---|" * len(results["arms"])]
    for key, source in figures:
        cells = [_spread(vals) if len(vals) > 1 else _f(vals[0] if vals else None)
                 for vals in (values(source, arm, key) for arm in results["arms"])]
        if any(c != "n/a" for c in cells):
            lines.append(f"| {key.replace('_', ' ')} | " + " | ".join(cells) + " |")
    if results.get("comparisons"):
        lines += ["", "### A − B seed by seed (same training seed paired)", "",
                  "| A vs B | figure | " + " | ".join(f"seed {s}" for s in seeds) + " | A − B across seeds |",
                  "|---|---|" + "---|" * (len(seeds) + 1)]
        for comp in results["comparisons"]:
            a, b = comp["a"], comp["b"]
            for key, source in figures:
                va, vb = by_seed(source, a, key), by_seed(source, b, key)
                diffs = {s: va[s] - vb[s] for s in seeds if va.get(s) is not None and vb.get(s) is not None}
                if len(diffs) > 1:
                    lines.append(f"| {a} vs {b} | {key.replace('_', ' ')} | "
                                 + " | ".join("n/a" if s not in diffs else f"{diffs[s]:+.3f}" for s in seeds)
                                 + f" | {_sign(list(diffs.values()))} |")
    return lines


def _reorder(mapping: dict, order: list | None) -> dict:
    """``mapping`` with the keys named in ``order`` first, in that order (the rest after, as they come)."""
    first = [k for k in order or [] if k in mapping]
    return {**{k: mapping[k] for k in first}, **{k: v for k, v in mapping.items() if k not in first}}


def _in_file_order(results: dict) -> dict:
    """The results with arms, paper rows and per-class tables in the experiment file's order (``order``)."""
    order = results.get("order") or {}
    out = dict(results)
    for key in ("arms", "oracle", "oracle_per_seed"):
        if key in out:
            out[key] = _reorder(out[key], order.get("arms"))
    if "paper" in out:
        out["paper"] = _reorder(out["paper"], order.get("paper"))
    if out.get("per_class"):
        classes, columns = order.get("classes") or {}, order.get("per_class_metrics")
        out["per_class"] = {
            arm: {cls: _reorder(row, columns) for cls, row in _reorder(table, classes.get(arm)).items()}
            for arm, table in _reorder(out["per_class"], order.get("per_class")).items()}
    return out


def render_results(results: dict) -> str:
    """The experiment's markdown: arms × metrics (mean ± s.d. across subjects), paper beside, tests.

    Takes the object ``results.json`` holds (key order does not matter: ``order`` says it)."""
    results = _in_file_order(results)
    metrics = results["metrics"]
    lines = [f"# {results['experiment']}", ""]
    if results.get("description"):
        lines += [results["description"].strip(), ""]
    lines += [f"Folds: {results['folds']}; seeds: {results['seeds']}; "
              f"cells done: {results['n_cells_done']}/{results['n_cells']}. "
              "Values: mean ± s.d. across subjects of the per-subject value averaged over seeds; "
              "`seed s.d.`: mean across subjects of the s.d. across seeds.", ""]
    lines += ["| arm | " + " | ".join(m.replace("_", " ") for m in metrics) + " | n subjects |",
              "|---|" + "---|" * (len(metrics) + 1)]
    for arm, table in results["arms"].items():
        cells = []
        for m in metrics:
            t = table[m]
            sd = f" ± {t['std_subjects']:.3f}" if t["std_subjects"] is not None else ""
            cells.append(f"{_f(t['mean'])}{sd}")
        n = max((t["n_subjects"] for t in table.values()), default=0)
        lines.append(f"| {arm} | " + " | ".join(cells) + f" | {n} |")
    seed_sd = [t["seed_sd_mean"] for table in results["arms"].values() for t in table.values()
               if t["seed_sd_mean"] is not None]
    if seed_sd:
        lines += ["", f"Largest across-seed deviation of any arm and metric: {max(seed_sd):.3f}."]
    lines += _seed_lines(results)
    if results.get("paper"):
        lines += ["", "## The paper's figures (same arms)", "",
                  "| arm | " + " | ".join(m.replace("_", " ") for m in metrics) + " |",
                  "|---|" + "---|" * len(metrics)]
        for arm, figs in results["paper"].items():
            lines.append(f"| {arm} | " + " | ".join(_f(figs.get(m)) for m in metrics) + " |")
    if results.get("comparisons"):
        lines += ["", "## Paired comparisons (unit: subject; Wilcoxon signed-rank, Holm across the metrics)", "",
                  "| A vs B | metric | n | mean A | mean B | Δ [95% CI] | p | p (Holm) | Cohen's d "
                  "| min. attainable p |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for comp in results["comparisons"]:
            for m, t in _reorder(comp["metrics"], metrics).items():  # the file's metric order, not JSON's
                ci = t.get("ci95_difference")
                ci_s = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
                lines.append(f"| {comp['a']} vs {comp['b']} | {m.replace('_', ' ')} | {t['n_units']} | "
                             f"{_f(t['mean_a'])} | {_f(t['mean_b'])} | {_f(t['mean_difference'])}{ci_s} | "
                             f"{_p(t['wilcoxon_p'])} | {_p(t['wilcoxon_p_holm'])} | {_f(t['cohens_d'], 2)} | "
                             f"{_p(t['min_attainable_p'])} |")
    per_class = results.get("per_class") or {}
    if len(per_class) > 1:  # one table, the arms side by side (the paper's Table IV layout)
        arms = list(per_class)
        mets = [m for m in next(iter(per_class[arms[0]].values()), {}) if m != "n"]
        short = {"graph_causal_agreement": "Faith.", "active_au_recall": "Active", "active_au_precision": "Prec."}
        classes = list(dict.fromkeys(c for a in arms for c in per_class[a]))
        lines += ["", "## Per class, side by side", "",
                  "| class | " + " | ".join(f"{short.get(m, m.replace('_', ' '))} ({a})" for a in arms for m in mets)
                  + " |",
                  "|---|" + "---|" * (len(arms) * len(mets))]
        for cls in classes:
            lines.append(f"| {cls} | " + " | ".join(_f(per_class[a].get(cls, {}).get(m)) for a in arms for m in mets)
                         + " |")
    for arm, table in per_class.items():
        mets = [m for m in next(iter(table.values()), {}) if m != "n"]
        lines += ["", f"## Per class: {arm} (averaged over cells)", "",
                  "| class | n | " + " | ".join(m.replace("_", " ") for m in mets) + " |",
                  "|---|---|" + "---|" * len(mets)]
        for cls, row in table.items():
            lines.append(f"| {cls} | {row['n']} | " + " | ".join(_f(row[m]) for m in mets) + " |")
    if results.get("oracle"):
        keys = [k for k in ORACLE_KEYS if k != "true_parent_agreement_signed"]
        lines += ["", "## Oracle figures (synthetic benchmark; pooled per cell, averaged)", "",
                  "| arm | " + " | ".join(k.replace("_", " ") for k in keys) + " |", "|---|" + "---|" * len(keys)]
        for arm, o in results["oracle"].items():
            lines.append(f"| {arm} | " + " | ".join(_f(o.get(k)) for k in keys) + " |")
    return "\n".join(lines) + "\n"
