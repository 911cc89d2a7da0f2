"""Faithfulness and recognition metrics, every counterfactual one through ``facr.causal``.

For a class c of sample b (the label by default, as in the training objective):

* **counterfactual sensitivity** — the fraction of pairs (b, k ∈ Pa(c)) where do(z_k = 0) moves
  ŷ_c in the polarity-implied direction by more than ``margin``: s_kc·Δ_kc > margin;
* **counterfactual invariance** — the fraction of pairs (b, k ∉ Pa(c)) with |Δ_kc| ≤ ε;
* **invoked AUs** — the top-|Pa(ĉ)| AUs by |Δ_kĉ| on the *predicted* class ĉ (what the model
  relies on for the decision it made).

The pair selection is :func:`facr.causal.pair_masks` — the same as the loss — so a test can show
that the loss and the audit look at the same pairs and the same Δ.

**One yardstick for named AUs** (:func:`score_explanations`): FACR's invoked AUs, a verbalizer's
rationale, EmoLA's text and a frozen LLM's answer are each an :class:`Explanation` (the AUs it
names, the emotion it states, the face's labels, and Δ where the reasoner has a latent to
intervene on) and are scored by the same code: **graph-causal agreement** (recall of Pa(c)) against
the stated emotion and against the label, each unsigned (the paper's) and **signed** (a named
parent counts only if its do() moved ŷ_c the way its edge says; undefined without an intervention),
**PSPI agreement** for pain statements, and **active-AU precision / recall** over the AUs the labels
code.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from facr import au as au_vocab
from facr.causal import Effects, pair_masks


@dataclass
class PairCounts:
    """Sums and counts behind sensitivity / invariance (per class for the per-class tables)."""

    sens_hits: np.ndarray  # [C]
    sens_pairs: np.ndarray
    inv_hits: np.ndarray
    inv_pairs: np.ndarray

    def __add__(self, other: "PairCounts") -> "PairCounts":
        return PairCounts(self.sens_hits + other.sens_hits, self.sens_pairs + other.sens_pairs,
                          self.inv_hits + other.inv_hits, self.inv_pairs + other.inv_pairs)

    @staticmethod
    def zeros(n_classes: int) -> "PairCounts":
        z = np.zeros(n_classes, dtype=np.int64)
        return PairCounts(z.copy(), z.copy(), z.copy(), z.copy())

    @property
    def sensitivity(self) -> float | None:
        return pooled_ratio(self.sens_hits, self.sens_pairs)

    @property
    def invariance(self) -> float | None:
        return pooled_ratio(self.inv_hits, self.inv_pairs)


def pooled_ratio(num: np.ndarray, den: np.ndarray) -> float | None:
    """Σ num / Σ den: a rate pooled over every pair (None when there are no pairs)."""
    d = den.sum()
    return float(num.sum() / d) if d else None


def _per_sample(mask: torch.Tensor) -> np.ndarray:
    """The True entries of each row of ``mask`` ``[B, K]``, as int64 ``[B]``."""
    return mask.sum(dim=1).cpu().numpy().astype(np.int64)


def pair_hits(effects: Effects, signs: torch.Tensor, target: torch.Tensor, z: torch.Tensor,
              epsilon: float, margin: float | None = None, scope: str = "all") -> dict[str, np.ndarray]:
    """Per sample: hits and pair counts of counterfactual sensitivity (s·Δ > margin) and
    invariance (|Δ| ≤ ε) for the class ``target[b]``, as int arrays ``[B]`` under the keys
    ``sens_hits, sens_pairs, inv_hits, inv_pairs``. ``margin`` defaults to ε: a move counts only
    where invariance would not."""
    margin = epsilon if margin is None else margin
    masks = pair_masks(signs, target, z, scope)
    delta = effects.for_class(target)
    sens_hit = (masks.sign.to(delta.dtype) * delta > margin) & masks.causal
    inv_hit = (delta.abs() <= epsilon) & masks.irrelevant
    return {"sens_hits": _per_sample(sens_hit), "sens_pairs": _per_sample(masks.causal),
            "inv_hits": _per_sample(inv_hit), "inv_pairs": _per_sample(masks.irrelevant)}


def counterfactual_pairs(effects: Effects, signs: torch.Tensor, target: torch.Tensor, z: torch.Tensor,
                         epsilon: float, margin: float | None = None, scope: str = "all") -> PairCounts:
    """:func:`pair_hits` summed per class of ``target``."""
    hits = pair_hits(effects, signs, target, z, epsilon, margin, scope)
    t = target.long().cpu().numpy()
    C = signs.shape[1]
    per_class = {k: np.bincount(t, weights=v, minlength=C).astype(np.int64) for k, v in hits.items()}
    return PairCounts(per_class["sens_hits"], per_class["sens_pairs"], per_class["inv_hits"], per_class["inv_pairs"])


def invoked_aus(effects: Effects, signs: torch.Tensor, predicted: torch.Tensor | None = None) -> list[list[int]]:
    """For each sample, the indices (into K) of the top-|Pa(ĉ)| AUs by |Δ_kĉ|, largest first."""
    if predicted is None:
        predicted = effects.logits.argmax(dim=1)
    n_parents = (signs != 0).sum(dim=0).to(predicted.device)[predicted.long()]  # [B]
    order = effects.for_class(predicted).abs().argsort(dim=1, descending=True)
    return [order[b, : int(n_parents[b])].tolist() for b in range(order.shape[0])]


# ------------------------------------------------------------------ the one yardstick for named AUs
# Pa(c) with its edge signs s_kc, per class: ``{"happiness": {"AU6": 1, "AU12": 1}, ...}``.
Parents = dict[str, dict[str, int]]

# The per-explanation figures every reasoner is scored on, in report order.
SET_KEYS = ("graph_causal_agreement", "graph_causal_agreement_signed", "graph_causal_agreement_label",
            "graph_causal_agreement_label_signed", "pspi_agreement", "pspi_agreement_signed",
            "active_au_precision", "active_au_recall")
# The figures with a chance level (what naming as many AUs at random would score).
CHANCE_KEYS = ("graph_causal_agreement", "graph_causal_agreement_label", "active_au_precision")
# PSPI is a sum of the six AUs' intensities: each of them raises pain (sign +1).
PSPI = {f"AU{n}": 1 for n in au_vocab.PSPI_AUS}


def parents_from_signs(signs, aus: list[str], classes: list[str]) -> Parents:
    """Pa(c) with signs from a ``[K, C]`` sign matrix in the order of ``aus`` / ``classes``."""
    s = np.asarray(signs)
    return {c: {aus[k]: int(s[k, j]) for k in np.flatnonzero(s[:, j])} for j, c in enumerate(classes)}


def parents_from_graph(graph) -> Parents:
    """Pa(c) with signs of every class of an :class:`~facr.graph.AUGraph`."""
    return {c: dict(graph.parents(c)) for c in graph.classes}


@dataclass
class Explanation:
    """What one reasoner's explanation of one face names, and what it is scored against.

    The one unit of the yardstick: FACR's invoked AUs, a verbalizer's rationale, EmoLA's text and a
    frozen LLM's answer all become an ``Explanation`` and go through :func:`score_explanations`.
    """

    named: Iterable[str]  # canonical AU ids the explanation names (invoked, or read from its text)
    stated: str | None  # the emotion the reasoner states (FACR: its prediction ĉ); None: states none
    label: str | None  # the labelled emotion y
    active: set[str] | None = None  # AUs labelled present (None: the face codes no AU)
    coded: set[str] | None = None  # AUs the labels code (None: unknown, precision reads every named AU)
    # Δ_kc = ŷ_c − ŷ_c^{do(z_k = 0)} per class c (at least ĉ and y) and AU k; None: the reasoner has no
    # latent to intervene on, so no signed figure exists for it.
    effect: dict[str, dict[str, float]] | None = None


def agreement(named: set[str], parents: dict[str, int] | None,
              effect: dict[str, float] | None) -> tuple[float | None, float | None]:
    """Graph-causal agreement of a named set with Pa(c) (``parents``: AU → s_kc): the unsigned recall
    |named ∩ Pa(c)| / |Pa(c)| (the paper's), and the **signed** one, where a named parent counts only
    if its do(z_k = 0) moved ŷ_c the way its edge says (s_kc·Δ_kc > 0). None where Pa(c) is empty or
    unknown; the signed one also where there is no effect to read (``effect`` None)."""
    if not parents:
        return None, None
    hit = named & parents.keys()
    unsigned = len(hit) / len(parents)
    if effect is None:
        return unsigned, None
    return unsigned, sum(parents[a] * effect.get(a, 0.0) > 0 for a in hit) / len(parents)


def precision_recall(named: set[str], active: set[str] | None,
                     coded: set[str] | None) -> tuple[float | None, float | None]:
    """Active-AU precision |named ∩ active| / |named ∩ coded| and recall |named ∩ active| / |active|.
    Precision reads only the AUs the labels code (naming an AU the dataset does not code is not an
    error); ``coded`` None reads every named AU. None where undefined (nothing coded, nothing named
    among the coded AUs, nothing active)."""
    if active is None:
        return None, None
    judged = named & coded if coded is not None else named
    hit = len(named & active)
    return (hit / len(judged) if judged else None), (hit / len(active) if active else None)


@dataclass
class SetScores:
    """Per-explanation figures of :func:`score_explanations` (None = undefined for that explanation)."""

    values: dict[str, list[float | None]]  # per key of SET_KEYS, one value per explanation
    n_named: list[int]
    chance: dict[str, list[float | None]]  # per key of CHANCE_KEYS

    def summary(self, idx=None) -> dict:
        """The mean of each figure over the explanations ``idx`` (default: all) where it is defined,
        and ``aus_per_frame``."""
        idx = range(len(self.n_named)) if idx is None else idx
        out = {key: mean_defined([v[i] for i in idx]) for key, v in self.values.items()}
        named = [self.n_named[i] for i in idx]
        out["aus_per_frame"] = float(np.mean(named)) if named else None
        return out

    def chance_summary(self, idx=None) -> dict:
        idx = range(len(self.n_named)) if idx is None else idx
        return {key: mean_defined([v[i] for i in idx]) for key, v in self.chance.items()}

    def ratio_parts(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """Numerator and denominator per explanation whose sums give the mean of ``key`` over the
        explanations where it is defined (what a subject-level bootstrap resamples)."""
        v = self.values[key]
        return (np.array([x if x is not None else 0.0 for x in v], dtype=float),
                np.array([x is not None for x in v], dtype=float))


def score_explanations(explanations: list[Explanation], parents: Parents, *, n_universe: int,
                       pain_class: str = "pain") -> SetScores:
    """The one scoring function for every reasoner's named or invoked AUs.

    Per explanation: graph-causal agreement against Pa(stated emotion) and against Pa(label), each
    unsigned and signed (:func:`agreement`); PSPI agreement (the six PSPI AUs, where the stated
    emotion is ``pain_class``), unsigned and signed; active-AU precision / recall over the coded AUs
    (:func:`precision_recall`); the number named; and the chance levels: n / ``n_universe`` for the
    agreement of n AUs drawn at random from ``n_universe`` (where Pa(c) is non-empty), |active| /
    |coded| for precision.
    """
    values = {key: [] for key in SET_KEYS}
    chance = {key: [] for key in CHANCE_KEYS}
    n_named = []
    for e in explanations:
        named = set(e.named)
        effect = e.effect or {}
        scored = (("", e.stated), ("_label", e.label))
        for suffix, cls in scored:
            pa = parents.get(cls) if cls is not None else None
            unsigned, signed = agreement(named, pa, effect.get(cls) if e.effect is not None else None)
            values[f"graph_causal_agreement{suffix}"].append(unsigned)
            values[f"graph_causal_agreement{suffix}_signed"].append(signed)
            chance[f"graph_causal_agreement{suffix}"].append(min(len(named), n_universe) / n_universe
                                                             if pa and n_universe else None)
        pspi = agreement(named, PSPI, effect.get(pain_class) if e.effect is not None else None) \
            if e.stated == pain_class else (None, None)
        values["pspi_agreement"].append(pspi[0])
        values["pspi_agreement_signed"].append(pspi[1])
        precision, recall = precision_recall(named, e.active, e.coded)
        values["active_au_precision"].append(precision)
        values["active_au_recall"].append(recall)
        chance["active_au_precision"].append(len(e.active) / len(e.coded) if e.active is not None and e.coded
                                             else None)
        n_named.append(len(named))
    return SetScores(values, n_named, chance)


def mean_defined(values) -> float | None:
    """Mean of the values that are not None (None when there are none)."""
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def recognition(y_true: np.ndarray, logits: np.ndarray, classes: list[str]) -> dict:
    """Accuracy, macro-F1 over the classes present in ``y_true``, and AUC (binary: positive class
    = index 1; multi-class: one-vs-rest macro). AUC is ``None`` (undefined), not an error, when
    ``y_true`` holds a single class — e.g. a held-out subject who is never in pain."""
    from scipy.special import softmax
    from sklearn.metrics import f1_score, roc_auc_score

    y_true = np.asarray(y_true)
    pred = logits.argmax(axis=1)
    present = sorted(set(y_true.tolist()))
    out = {
        "accuracy": float((pred == y_true).mean()) if len(y_true) else None,
        "macro_f1": (float(f1_score(y_true, pred, labels=present, average="macro", zero_division=0))
                     if len(y_true) else None),
        "auc": None,
    }
    if len(present) >= 2:
        prob = softmax(logits, axis=1)
        if len(classes) == 2:
            out["auc"] = float(roc_auc_score(y_true, prob[:, 1]))
        else:
            cols = present
            p = prob[:, cols] / prob[:, cols].sum(axis=1, keepdims=True)
            out["auc"] = float(roc_auc_score(y_true, p, multi_class="ovr", labels=cols)) if len(cols) > 2 else \
                float(roc_auc_score((y_true == cols[1]).astype(int), p[:, 1]))
    if len(classes) == 2:
        out["f1_positive"] = float(f1_score(y_true, pred, pos_label=1, average="binary", zero_division=0))
    from facr.circumplex import COORDINATES, affective_distance

    if len(y_true) and all(c in COORDINATES for c in classes):
        # how far on Russell's circumplex the errors land from the truth (facr.circumplex)
        ad = affective_distance(y_true, pred, classes)
        out["affective_error_distance"] = ad["error_distance"]
        out["affective_chance_distance"] = ad["chance_error_distance"]
    return out
