"""Faithfulness and recognition metrics, every counterfactual one through ``facr.causal``.

For a class c of sample b (the label by default, as in the training objective):

* **counterfactual sensitivity** — the fraction of pairs (b, k ∈ Pa(c)) where do(z_k = 0) moves
  ŷ_c in the polarity-implied direction by more than ``margin``: s_kc·Δ_kc > margin;
* **counterfactual invariance** — the fraction of pairs (b, k ∉ Pa(c)) with |Δ_kc| ≤ ε;
* **invoked AUs** — the top-|Pa(ĉ)| AUs by |Δ_kĉ| on the *predicted* class ĉ (what the model
  relies on for the decision it made), and from them the set metrics: **graph-causal agreement**
  (recall of Pa(ĉ)), **PSPI agreement** (of the six PSPI AUs, for pain predictions), **active-AU
  precision / recall** (against the AUs labelled present), AUs named per frame.

The pair selection is :func:`facr.causal.pair_masks` — the same as the loss — so a test can show
that the loss and the audit look at the same pairs and the same Δ.
"""

from __future__ import annotations

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
        n = self.sens_pairs.sum()
        return float(self.sens_hits.sum() / n) if n else None

    @property
    def invariance(self) -> float | None:
        n = self.inv_pairs.sum()
        return float(self.inv_hits.sum() / n) if n else None


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
    count = lambda m: m.sum(dim=1).cpu().numpy().astype(np.int64)  # noqa: E731
    return {"sens_hits": count(sens_hit), "sens_pairs": count(masks.causal),
            "inv_hits": count(inv_hit), "inv_pairs": count(masks.irrelevant)}


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


@dataclass
class SetScores:
    """Per-sample set metrics of named (invoked) AUs against reference sets; None = undefined."""

    graph_agreement: list[float | None]
    pspi_agreement: list[float | None]
    active_precision: list[float | None]
    active_recall: list[float | None]
    n_named: list[int]


def set_scores(named: list[set[str]], parents: list[set[str]], active: list[set[str] | None],
               is_pain: list[bool] | None = None) -> SetScores:
    """Set metrics for named AU sets (canonical ids).

    ``parents[b]``: Pa(c_b) of the class the explanation is about. ``active[b]``: AUs labelled
    present (None where the frame codes no AU). ``is_pain[b]``: whether PSPI agreement applies.
    """
    pspi = {f"AU{n}" for n in au_vocab.PSPI_AUS}
    out = SetScores([], [], [], [], [])
    for b, got in enumerate(named):
        out.n_named.append(len(got))
        pa = parents[b]
        out.graph_agreement.append(len(got & pa) / len(pa) if pa else None)
        out.pspi_agreement.append(len(got & pspi) / len(pspi) if is_pain and is_pain[b] else None)
        act = active[b]
        out.active_precision.append(len(got & act) / len(got) if act is not None and got else None)
        out.active_recall.append(len(got & act) / len(act) if act else None)
    return out


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
        "macro_f1": float(f1_score(y_true, pred, labels=present, average="macro", zero_division=0)) if len(y_true) else None,
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
