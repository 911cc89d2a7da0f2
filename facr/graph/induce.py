"""Graph induction from AU/label data (paper §3.2).

* **AU→class edges**: L1-regularised logistic regression of each class on AU presence
  (scikit-learn, liblinear). C is chosen by stratified cross-validation of the log-loss with
  the one-standard-error rule (the sparsest C within one s.e. of the best); the edge sign is
  the coefficient's sign, the weight its magnitude, and its *stability* is the fraction of
  bootstrap resamples that select it with the same sign. Edges below ``stability_threshold``
  are dropped.

  The contrast is one-vs-rest, or one-vs-reference when a reference class is set. With
  ``reference="auto"`` (the default) a ``neutral`` class is the reference when present (and,
  for a two-class pain task, the class that is not pain). One-vs-rest coefficients also carry
  every *other* class's evidence (AU12 is evidence against sadness because it is evidence for
  happiness), which fills the graph with inhibitory edges that no prototype has; against a
  neutral reference a coefficient is non-zero exactly where the AU's rate differs from the
  neutral face (for AUs independent given the class the log-odds are exactly linear in them).
  Use ``reference="rest"`` for the plain one-vs-rest of the paper.
* **Selection** (``selection``): ``"stability"`` (the default) keeps an edge only when the
  bootstrap resamples select it with the same sign often enough; ``"nonzero"`` is the paper's §3.2
  as written: every non-zero coefficient of the fit at the chosen C is an edge (no resampling; the
  stability thresholds do not apply). :data:`PAPER_INDUCTION` is the paper's setting: one-vs-rest,
  non-zero selection.
* **AU→AU edges**: neighbourhood selection (Meinshausen & Bühlmann, 2006): an L1-logistic
  regression of each AU on all the others and on the class (so that AUs driven by the same
  emotion are not linked for that alone); a pair is linked when either regression selects the
  other (the "or" rule) in at least ``au_stability_threshold`` of the bootstrap resamples.
  **Orientation rule**: the edge points from the rarer AU to the more frequent one (ties: lower
  AU number first). Since P(b|a)/P(a|b) = P(b)/P(a), the rarer AU's presence implies the other's
  more strongly than the reverse, as a driver implies what it co-activates (AU26 jaw drop →
  AU25 lips part). A total order orients every edge, so the AU part is acyclic by construction.
* **Pain**: a ``pain`` class gets exactly the PSPI composition (provenance ``pspi``), never
  induced edges.
* **EMFACS fill-in** (``fill="emfacs"``): a class left with no induced parent that has an EMFACS
  prototype receives it (provenance ``emfacs``).
"""

from __future__ import annotations

import csv
import math
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from facr import au as au_vocab
from facr.errors import DataFormatError, UnknownAUError
from facr.graph import validate as rules
from facr.graph.core import AUGraph
from facr.graph.prototypes import EMFACS_PROTOTYPES, add_emfacs, add_pspi

DEFAULT_CS = tuple(float(c) for c in np.logspace(-3, 2, 16))
SELECTIONS = ("stability", "nonzero")
# The paper's §3.2 as written: one-vs-rest L1-logistic, every non-zero coefficient an edge.
PAPER_INDUCTION = {"reference": "rest", "selection": "nonzero"}


@dataclass
class InductionConfig:
    """Settings of :func:`induce_graph`; every field is validated in ``__post_init__``."""

    # metadata: the flags of `facr graph induce` (facr.flags)
    reference: str = field(default="auto", metadata={
        "help": "contrast: 'auto' (neutral if present), 'rest' (one-vs-rest), or a class name"})
    cs: tuple[float, ...] = DEFAULT_CS
    cv_folds: int = 5
    c_rule: str = "1se"
    n_bootstrap: int = field(default=50, metadata={
        "flag": "--bootstrap", "help": "bootstrap resamples for edge stability"})
    stability_threshold: float = field(default=0.9, metadata={
        "flag": "--threshold", "help": "minimum edge stability to keep an edge, AU->class and AU->AU alike"})
    au_edges: bool = field(default=True, metadata={
        "flag": "--no-au-edges", "help": "skip AU->AU neighbourhood selection"})
    au_stability_threshold: float = 0.9
    fill: str | None = field(default=None, metadata={
        "choices": ("emfacs",), "help": "give classes with no induced parent their EMFACS prototype"})
    pain_class: str = "pain"
    seed: int = field(default=0, metadata={"help": "random seed (bootstrap resamples, cross-validation folds)"})
    # stability | nonzero (the paper: every non-zero coefficient is an edge)
    selection: str = field(default="stability", metadata={
        "choices": SELECTIONS, "help": "stability: keep edges selected in >= --threshold of the resamples (default); "
                                       "nonzero: every non-zero coefficient is an edge (the paper; with --reference "
                                       "rest: its one-vs-rest graph)"})

    def __post_init__(self):
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {', '.join(SELECTIONS)}, got {self.selection!r}")
        self.cs = tuple(float(c) for c in self.cs)
        if not self.cs or any(not math.isfinite(c) or c <= 0 for c in self.cs):
            raise ValueError(f"cs: inverse regularisation strengths must be finite and > 0, got {self.cs}")
        if self.cv_folds < 2:
            raise ValueError(f"cv_folds must be >= 2, got {self.cv_folds}")
        if self.c_rule not in ("1se", "best"):
            raise ValueError(f"c_rule must be '1se' or 'best', got {self.c_rule!r}")
        if self.n_bootstrap < 1:
            raise ValueError(f"n_bootstrap must be >= 1, got {self.n_bootstrap}")
        for name in ("stability_threshold", "au_stability_threshold"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if self.fill not in (None, "emfacs"):
            raise ValueError(f"fill must be None or 'emfacs', got {self.fill!r}")


@dataclass
class AUTable:
    """AU presence (0/1) per row, the AU order, and a class label per row."""

    aus: list[str]
    presence: np.ndarray
    labels: list[str]
    source: str = "<table>"
    n_dropped: int = 0
    notes: list[str] = field(default_factory=list)


def label_to_class(label: str) -> str:
    """A dataset label as a class id: ``"Happy Face " -> "happy_face"``."""
    return "_".join(str(label).strip().lower().split())


def read_au_table(path: str | os.PathLike, label_column: str, presence_threshold: float | None = None) -> AUTable:
    """Read a CSV with one column per AU (any spelling) and a label column.

    Values are 0/1 presence or intensities; intensities become presence at
    ``presence_threshold`` (default: 1.0 when any value exceeds 1, the FACS "A" level of a 0–5
    scale, else 0.5). An empty cell, ``nan`` or a negative value (Aff-Wild2's -1) means "not
    coded": such rows are dropped and counted. When an AU appears as both ``AUxx_c`` (presence)
    and ``AUxx_r`` (intensity) — OpenFace — the presence column is used. Columns that name no
    AU (frame, confidence, ...) are ignored; a column that looks like an AU but is not a FACS
    main AU is an error.
    """
    path = Path(path)
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise DataFormatError(path, f"cannot read: {exc.strerror or exc}") from None
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise DataFormatError(path, "empty file (expected a header row)") from None
        except csv.Error as exc:
            raise DataFormatError(path, f"line 1: {exc}") from None
        except UnicodeDecodeError as exc:
            raise _not_utf8(path, exc) from None
        header = [h.strip() for h in header]
        if label_column not in header:
            raise DataFormatError(path, f"no label column {label_column!r} (columns: {', '.join(header)})")
        label_idx = header.index(label_column)
        columns: dict[int, list[tuple[int, str]]] = {}
        for i, name in enumerate(header):
            if i == label_idx:
                continue
            try:
                number = au_vocab.parse(name)
            except UnknownAUError as exc:
                if "AU" in name.upper() and any(ch.isdigit() for ch in name) and "not a FACS main" in exc.message:
                    raise DataFormatError(path, f"column {name!r}: {exc.message}") from None
                continue
            columns.setdefault(number, []).append((i, name))
        if not columns:
            raise DataFormatError(path, f"no AU columns found (columns: {', '.join(header)})")
        chosen: dict[int, int] = {}
        for number, cols in columns.items():
            if len(cols) == 1:
                chosen[number] = cols[0][0]
                continue
            presence_cols = [i for i, n in cols if n.lower().endswith("_c")]
            if len(presence_cols) != 1:
                names = ", ".join(n for _, n in cols)
                raise DataFormatError(path, f"columns {names} all name AU{number}")
            chosen[number] = presence_cols[0]
        order = sorted(chosen)
        rows, labels, dropped = [], [], 0
        try:
            for line_no, row in enumerate(reader, start=2):
                if not row or all(not cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    raise DataFormatError(path, f"line {line_no}: {len(row)} fields, header has {len(header)}")
                label = row[label_idx].strip()
                values = []
                for number in order:
                    cell = row[chosen[number]].strip()
                    if cell == "" or cell.lower() in ("nan", "na"):
                        values.append(math.nan)
                        continue
                    try:
                        values.append(float(cell))
                    except ValueError:
                        raise DataFormatError(
                            path, f"line {line_no}: column {header[chosen[number]]!r}: not a number: {cell!r}"
                        ) from None
                values = np.asarray(values)
                if not label or np.any(np.isnan(values)) or np.any(values < 0):
                    dropped += 1
                    continue
                cls = label_to_class(label)
                problem = rules.problem_class_id(cls)
                if problem:
                    raise DataFormatError(path, f"line {line_no}: label {label!r}: {problem}")
                rows.append(values)
                labels.append(cls)
        except csv.Error as exc:
            raise DataFormatError(path, f"line {reader.line_num}: {exc}") from None
        except UnicodeDecodeError as exc:
            raise _not_utf8(path, exc) from None
    if not rows:
        raise DataFormatError(path, f"no usable rows ({dropped} dropped for missing values)")
    values = np.vstack(rows)
    if presence_threshold is None:
        presence_threshold = 1.0 if values.max() > 1 else 0.5
    presence = (values >= presence_threshold).astype(np.float64)
    return AUTable([f"AU{n}" for n in order], presence, labels, str(path), dropped)


def _not_utf8(path: Path, exc: UnicodeDecodeError) -> DataFormatError:
    # The decoder reads in blocks, so exc.start is an offset in a block, not in the file: name the byte.
    byte = exc.object[exc.start:exc.start + 1].hex()
    return DataFormatError(path, f"not UTF-8 text (byte 0x{byte}: {exc.reason}); save the table as UTF-8 CSV")


# ----------------------------------------------------------------------------- fitting
def table_from_records(records, task: str = "emotion", source: str = "<records>") -> AUTable:
    """An :class:`AUTable` from :class:`~facr.data.records.FaceRecord` objects.

    ``task="emotion"`` labels rows with their emotion; ``task="pain"`` with ``pain`` / ``no_pain``
    (PSPI > 0, the UNBC protocol). AUs are those any record codes; rows without the label or with
    an uncoded AU are dropped and counted (as :func:`read_au_table` does for empty cells).
    """
    from facr.data.records import au_order, presence_matrix

    if task not in ("emotion", "pain"):
        raise ValueError(f"task must be 'emotion' or 'pain', got {task!r}")
    records = list(records)
    aus = au_order(records)
    if not aus:
        raise ValueError("no record codes any AU")
    x = presence_matrix(records, aus)
    if task == "pain":
        labels = [None if r.pain is None else ("pain" if r.pain else "no_pain") for r in records]
    else:
        labels = [r.emotion for r in records]
    keep = [i for i, lab in enumerate(labels) if lab is not None and not np.isnan(x[i]).any()]
    table = AUTable(aus, x[keep].astype(np.int8), [labels[i] for i in keep], source,
                    n_dropped=len(records) - len(keep))
    if table.n_dropped:
        table.notes.append(f"{table.n_dropped} records dropped (no {task} label or an AU not coded)")
    return table


def _bar(items, desc: str, on: bool):
    if not on:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="fit", leave=False, disable=None)

def _fit(X: np.ndarray, t: np.ndarray, C: float, seed: int) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # liblinear convergence chatter on separable folds
        model = LogisticRegression(
            C=C, l1_ratio=1.0, solver="liblinear", intercept_scaling=10.0, max_iter=1000, random_state=seed
        ).fit(X, t)
    return model.coef_.ravel()


def _choose_c(X: np.ndarray, t: np.ndarray, cfg: InductionConfig, seed: int) -> float:
    """C by stratified k-fold log-loss; '1se' picks the smallest C within one s.e. of the best."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    folds = min(cfg.cv_folds, int(t.sum()), int(len(t) - t.sum()))
    if folds < 2:
        return cfg.cs[-1]
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    scores = np.zeros((folds, len(cfg.cs)))
    for f, (tr, te) in enumerate(cv.split(X, t)):
        for j, C in enumerate(cfg.cs):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = LogisticRegression(
                    C=C, l1_ratio=1.0, solver="liblinear", intercept_scaling=10.0, max_iter=1000, random_state=seed
                ).fit(X[tr], t[tr])
            p = np.clip(model.predict_proba(X[te])[:, 1], 1e-9, 1 - 1e-9)
            scores[f, j] = np.mean(t[te] * np.log(p) + (1 - t[te]) * np.log(1 - p))
    mean = scores.mean(axis=0)
    best = int(mean.argmax())
    if cfg.c_rule == "best":
        return cfg.cs[best]
    se = scores[:, best].std(ddof=1) / math.sqrt(folds)
    ok = np.flatnonzero(mean >= mean[best] - se)
    return cfg.cs[int(ok.min())]


def _bootstrap_rows(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A bootstrap resample that keeps both outcomes (resampled within each outcome)."""
    pos, neg = np.flatnonzero(t == 1), np.flatnonzero(t == 0)
    return np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])


@dataclass
class _Selection:
    coef: np.ndarray
    stability: np.ndarray
    C: float


def _stable_l1(X: np.ndarray, t: np.ndarray, cfg: InductionConfig, seed: int) -> _Selection:
    """The L1 fit at the chosen C and each coefficient's stability (``nonzero``: 1 where selected, no resampling)."""
    C = _choose_c(X, t, cfg, seed)
    coef = _fit(X, t, C, seed)
    if cfg.selection == "nonzero":
        return _Selection(coef, (np.abs(coef) > 1e-10).astype(np.float64), C)
    rng = np.random.default_rng(seed)
    hits = np.zeros(X.shape[1])
    for _ in range(cfg.n_bootstrap):
        idx = _bootstrap_rows(t, rng)
        c_b = _fit(X[idx], t[idx], C, seed)
        hits += (np.abs(c_b) > 1e-10) & (np.sign(c_b) == np.sign(coef))
    return _Selection(coef, hits / cfg.n_bootstrap, C)


def resolve_reference(classes: Sequence[str], reference: str, pain_class: str = "pain") -> str | None:
    """The reference class of the contrast, or None for one-vs-rest."""
    if reference == "rest":
        return None
    if reference != "auto":
        if reference not in classes:
            raise ValueError(f"reference class {reference!r} is not among the labels ({', '.join(classes)})")
        return reference
    if "neutral" in classes:
        return "neutral"
    if len(classes) == 2 and pain_class in classes:
        return next(c for c in classes if c != pain_class)
    return None


def induce_class_edges(graph: AUGraph, presence: np.ndarray, labels: np.ndarray, aus: list[str],
                       classes: list[str], cfg: InductionConfig, progress: bool = False) -> dict:
    """Add stable L1-logistic AU→class edges to ``graph``; returns per-class fit details."""
    reference = resolve_reference(classes, cfg.reference, cfg.pain_class)
    details: dict[str, dict] = {}
    for ci, cls in enumerate(_bar(classes, "AU->class", progress)):
        if cls == reference:
            details[cls] = {"role": "reference"}
            continue
        if cls == cfg.pain_class:
            details[cls] = {"role": "pspi"}
            continue
        rows = (labels == cls) | (labels == reference) if reference else np.ones(len(labels), bool)
        X, t = presence[rows], (labels[rows] == cls).astype(np.int64)
        n_pos, n_neg = int(t.sum()), int(len(t) - t.sum())
        if n_pos < 2 or n_neg < 2:
            details[cls] = {"role": "skipped", "reason": f"{n_pos} positive / {n_neg} negative rows"}
            continue
        sel = _stable_l1(X, t, cfg, cfg.seed + 1000 * ci)
        kept = 0
        for k, au in enumerate(aus):
            if abs(sel.coef[k]) > 1e-10 and sel.stability[k] >= cfg.stability_threshold:
                # a stability is only a measurement when resamples were drawn
                extra = {"stability": round(float(sel.stability[k]), 4)} if cfg.selection == "stability" else {}
                graph.add_edge(au, cls, int(np.sign(sel.coef[k])), round(float(abs(sel.coef[k])), 6),
                               "induced-l1", **extra)
                kept += 1
        details[cls] = {"role": "induced", "C": sel.C, "n_rows": int(len(t)), "n_positive": n_pos, "n_edges": kept}
    return {"reference": reference, "classes": details}


def induce_au_edges(graph: AUGraph, presence: np.ndarray, aus: list[str], cfg: InductionConfig,
                    covariates: np.ndarray | None = None, progress: bool = False) -> dict:
    """Add stable neighbourhood-selection AU→AU edges, oriented rarer → more frequent.

    ``covariates`` (the class one-hot, when labels exist) enter every regression as extra
    regressors, so two AUs that co-occur only because the same emotion drives both are not
    linked: what remains is co-activation the class does not explain.
    """
    K = len(aus)
    extra = np.zeros((len(presence), 0)) if covariates is None else covariates
    prevalence = presence.mean(axis=0)
    usable = [k for k in range(K) if 2 <= presence[:, k].sum() <= len(presence) - 2]
    coefs = np.zeros((K, K))
    Cs: dict[str, float] = {}
    for j in _bar(usable, "AU->AU", progress):
        others = [k for k in range(K) if k != j]
        X = np.hstack([presence[:, others], extra])
        sel = _stable_l1(X, presence[:, j].astype(np.int64), cfg, cfg.seed + 7919 * (j + 1))
        Cs[aus[j]] = sel.C
        keep = sel.stability[: K - 1] >= cfg.au_stability_threshold
        coefs[j, others] = np.where(keep, sel.coef[: K - 1], 0.0)
    # Either regression selecting the other links the pair ("or" rule); sign and weight come
    # from the selected coefficients (the larger one decides a disagreement in sign).
    order = sorted(range(K), key=lambda k: (prevalence[k], au_vocab.parse(aus[k])))
    rank = {k: r for r, k in enumerate(order)}
    n_edges = 0
    for a in range(K):
        for b in range(a + 1, K):
            pair = [c for c in (coefs[a, b], coefs[b, a]) if abs(c) > 1e-10]
            if not pair:
                continue
            lead = max(pair, key=abs)
            src, dst = (a, b) if rank[a] < rank[b] else (b, a)
            graph.add_edge(aus[src], aus[dst], int(np.sign(lead)), round(float(np.mean(np.abs(pair))), 6),
                           "neighborhood")
            n_edges += 1
    return {"C": Cs, "n_edges": n_edges, "orientation": "rarer AU -> more frequent AU"}


def induce_graph(table: AUTable, config: InductionConfig | None = None, name: str | None = None,
                 progress: bool = False) -> AUGraph:
    """Induce G from an :class:`AUTable` (see the module docstring for the method).

    ``progress=True`` shows a tqdm bar per stage (on a terminal).
    """
    cfg = config or InductionConfig()
    labels = np.asarray(table.labels)
    classes = sorted(set(table.labels))
    aus = list(table.aus)
    graph = AUGraph(name or f"induced-{Path(table.source).stem}")
    for cls in classes:
        graph.add_class(cls)
    for a in aus:
        graph.add_au(a)
    class_info = induce_class_edges(graph, table.presence, labels, aus, classes, cfg, progress)
    # One column per class but the first (a full one-hot is collinear with the intercept),
    # scaled up so that the L1 penalty barely touches them: the class is a covariate to
    # adjust for, not a candidate edge.
    onehot = 10.0 * (labels[:, None] == np.asarray(classes[1:])[None, :]).astype(np.float64)
    au_info = induce_au_edges(graph, table.presence, aus, cfg, onehot, progress) if cfg.au_edges else None
    if cfg.pain_class in classes:
        add_pspi(graph, cfg.pain_class)
    filled = []
    if cfg.fill == "emfacs":
        for cls in classes:
            if cls in (class_info["reference"], cfg.pain_class) or graph.parents(cls):
                continue
            if cls in EMFACS_PROTOTYPES:
                add_emfacs(graph, cls)
                filled.append(cls)
    settings = asdict(cfg)
    settings["cs"] = [min(cfg.cs), max(cfg.cs), len(cfg.cs)]
    graph.meta = {
        "induced_from": os.path.basename(table.source),
        "n_rows": int(len(labels)),
        "n_rows_dropped": int(table.n_dropped),
        "class_counts": {c: int((labels == c).sum()) for c in classes},
        "contrast": "one-vs-rest" if class_info["reference"] is None else f"one-vs-{class_info['reference']}",
        "selection": cfg.selection,
        "au_prevalence": {a: round(float(p), 4) for a, p in zip(aus, table.presence.mean(axis=0))},
        "class_fits": class_info["classes"],
        "au_fits": au_info,
        "emfacs_filled": filled,
        "settings": settings,
    }
    return graph
