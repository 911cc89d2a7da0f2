"""Run a reasoner over a dataset once; score that pass against any graph.

Used by training (per-epoch validation, the final ``metrics.json``), by ``facr audit`` and by
``facr experiment``, so the numbers a run reports and the numbers an audit reports come from the
same code. The pass keeps ŷ and every ŷ^{do(z_k = 0)} ([N, K, C]), so auditing the same model
against a second graph (the true graph of a benchmark, a permuted one) needs no second pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from facr.au import ACTIVE
from facr.audit.metrics import (
    SET_KEYS,
    Explanation,
    SetScores,
    invoked_aus,
    pair_hits,
    parents_from_signs,
    pooled_ratio,
    recognition,
    score_explanations,
)
from facr.causal import Effects
from facr.data.torch_data import make_loader

# The figures every summary holds (the keys of `facr audit --json` besides per_class / per_subject).
SUMMARY_KEYS = ("n_samples", "accuracy", "macro_f1", "auc", "cf_sensitivity", "cf_invariance", *SET_KEYS,
                "aus_per_frame")
# Ratio-of-sums figures that get a subject-level (cluster) bootstrap CI.
CI_KEYS = ("accuracy", "cf_sensitivity", "cf_invariance", *SET_KEYS)


@dataclass
class SampleScores:
    """Per-sample faithfulness figures of one pass against one graph (``[N]`` arrays / lists)."""

    sens_hits: np.ndarray
    sens_pairs: np.ndarray
    inv_hits: np.ndarray
    inv_pairs: np.ndarray
    invoked: list[list[str]]
    sets: SetScores  # the invoked AUs scored by the one yardstick (facr.audit.metrics.score_explanations)
    # sensitivity over the parents z sees (z_k > ½, scope "active"): where the scope-"all" figure counts absent
    # parents too, which a z that reads only the AUs drawn cannot move
    seen_hits: np.ndarray
    seen_pairs: np.ndarray
    # the same parents scored by the AU labels instead of the model: present (labelled) of coded; the most a z
    # equal to the labels could score on cf_sensitivity, since do(z_k = 0) on a parent at 0 moves nothing
    label_hits: np.ndarray
    label_pairs: np.ndarray

    def ratio_parts(self, key: str, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Numerator and denominator per sample whose sums give the pooled figure ``key``."""
        if key == "accuracy":
            return correct.astype(float), np.ones(len(correct))
        if key == "cf_sensitivity":
            return self.sens_hits.astype(float), self.sens_pairs.astype(float)
        if key == "cf_invariance":
            return self.inv_hits.astype(float), self.inv_pairs.astype(float)
        if key == "cf_sensitivity_seen":
            return self.seen_hits.astype(float), self.seen_pairs.astype(float)
        if key == "cf_sensitivity_label_cap":
            return self.label_hits.astype(float), self.label_pairs.astype(float)
        return self.sets.ratio_parts(key)


@dataclass
class Evaluation:
    """Everything one pass produced, per sample, and the summary against the graph it was run with.

    ``cf_logits[n, k]`` = ŷ^{do(z_k = 0)} of sample n; Δ = ŷ − ŷ^{do} (:attr:`delta`).
    """

    classes: list[str]
    aus: list[str]
    labels: np.ndarray  # [N]
    logits: np.ndarray  # [N, C]
    cf_logits: np.ndarray  # [N, K, C]
    z: np.ndarray  # [N, K]
    au_targets: np.ndarray  # [N, K]
    au_mask: np.ndarray  # [N, K]
    subjects: np.ndarray  # [N] subject ids (str)
    signs: np.ndarray  # [K, C] the graph the summary metrics use
    epsilon: float = 0.1
    margin: float | None = None
    scope: str = "all"
    pain_class: str = "pain"
    metrics: dict = field(default_factory=dict)

    @property
    def predicted(self) -> np.ndarray:
        return self.logits.argmax(axis=1)

    @property
    def delta(self) -> np.ndarray:
        """Δ_kc = ŷ_c − ŷ_c^{do(z_k = 0)}, ``[N, K, C]``."""
        return self.logits[:, None, :] - self.cf_logits

    @property
    def delta_pred(self) -> np.ndarray:
        """Δ on each sample's predicted class, ``[N, K]``."""
        return self.delta_on(self.predicted)

    def delta_on(self, cls: np.ndarray) -> np.ndarray:
        """Δ on class ``cls[n]`` of each sample n, ``[N, K]`` (gathered first: no [N, K, C] array is built)."""
        cls = np.asarray(cls, dtype=np.int64)
        factual = np.take_along_axis(self.logits, cls[:, None], axis=1)  # [N, 1]
        return factual - np.take_along_axis(self.cf_logits, cls[:, None, None], axis=2)[:, :, 0]

    @property
    def mean_delta(self) -> np.ndarray:
        """Mean Δ_kc over the samples, ``[K, C]`` (the mean of a difference is the difference of means)."""
        if not len(self.logits):
            return np.zeros(self.cf_logits.shape[1:], dtype=np.float32)
        return self.logits.mean(axis=0)[None, :] - self.cf_logits.mean(axis=0)

    def effects(self) -> Effects:
        return Effects(torch.from_numpy(self.logits), torch.from_numpy(self.cf_logits), 0.0)

    def seen(self, i: int, aus: list[str]) -> list[str]:
        """Those of ``aus`` that sample ``i``'s latent shows (z_k ≥ ½, what the verbalizer's gate lets
        through), in order: the AUs a rationale of sample ``i`` may name."""
        return [a for a in aus if self.z[i, self.aus.index(a)] >= ACTIVE]

    def explanations(self, named: list | None = None) -> list[Explanation]:
        """Per sample, what the yardstick scores ``named[n]`` (default: nothing named) against: the
        predicted class as the stated emotion, the label, the AUs coded and labelled present, and Δ
        of every do(z_k = 0) on the predicted and the labelled class (for the signed figures)."""
        pred, labels = self.predicted, self.labels.astype(np.int64)
        on_pred, on_label = self.delta_on(pred), self.delta_on(labels)
        coded = self.au_mask > 0
        present = coded & (self.au_targets > 0)
        out = []
        for n in range(len(labels)):
            c, y = self.classes[pred[n]], self.classes[labels[n]]
            codes = {self.aus[k] for k in np.flatnonzero(coded[n])} or None
            out.append(Explanation(
                named=set(named[n]) if named is not None else set(), stated=c, label=y,
                active={self.aus[k] for k in np.flatnonzero(present[n])} if codes else None, coded=codes,
                effect={c: dict(zip(self.aus, on_pred[n].tolist())), y: dict(zip(self.aus, on_label[n].tolist()))}))
        return out

    def score(self, signs: np.ndarray | torch.Tensor | None = None) -> SampleScores:
        """Per-sample faithfulness against ``signs`` ([K, C]; default: the evaluation's own graph).

        Sensitivity and invariance are about the labelled class (as the training objective). The
        invoked AUs (top-|Pa(ĉ)| of the graph scored against, for the predicted class ĉ: the decision
        the model made) are scored by the one yardstick, :func:`~facr.audit.metrics.score_explanations`,
        as every other reasoner's named AUs are.
        """
        s = np.asarray(self.signs if signs is None else signs)
        s_t = torch.as_tensor(s, dtype=torch.int8)
        eff = self.effects()
        hits = pair_hits(eff, s_t, torch.from_numpy(self.labels), torch.from_numpy(self.z), self.epsilon,
                         self.margin, self.scope)
        seen = pair_hits(eff, s_t, torch.from_numpy(self.labels), torch.from_numpy(self.z), self.epsilon,
                         self.margin, "active")
        invoked = [[self.aus[k] for k in idx] for idx in invoked_aus(eff, s_t, torch.from_numpy(self.predicted))]
        sets = score_explanations(self.explanations(invoked), parents_from_signs(s, self.aus, self.classes),
                                  n_universe=len(self.aus), pain_class=self.pain_class)
        parents = (s[:, self.labels.astype(np.int64)] != 0).T & (self.au_mask > 0)  # [N, K], coded parents of y
        return SampleScores(hits["sens_hits"], hits["sens_pairs"], hits["inv_hits"], hits["inv_pairs"], invoked, sets,
                            seen["sens_hits"], seen["sens_pairs"], (parents & (self.au_targets > 0)).sum(1),
                            parents.sum(1))

    def _summary(self, sc: SampleScores, idx: np.ndarray) -> dict:
        y, logits = self.labels[idx], self.logits[idx]
        out = recognition(y, logits, self.classes)
        out.update({
            "n_samples": int(len(idx)),
            "au_f1": au_f1(self.z[idx], self.au_targets[idx], self.au_mask[idx]),
            "cf_sensitivity": pooled_ratio(sc.sens_hits[idx], sc.sens_pairs[idx]),
            "cf_invariance": pooled_ratio(sc.inv_hits[idx], sc.inv_pairs[idx]),
            "cf_sensitivity_seen": pooled_ratio(sc.seen_hits[idx], sc.seen_pairs[idx]),
            "cf_sensitivity_label_cap": pooled_ratio(sc.label_hits[idx], sc.label_pairs[idx]),
            **sc.sets.summary(idx),
        })
        return out

    def summarize(self, signs: np.ndarray | torch.Tensor | None = None, *, per_subject: bool = False,
                  ci: bool = False, n_resamples: int = 2000, seed: int = 0) -> dict:
        """The audit's figures against ``signs`` (default: the evaluation's graph).

        ``per_class``: sensitivity / invariance over samples *labelled* c, set metrics over samples
        *predicted* c. ``per_subject`` (optional): every summary figure per subject, the unit the
        paper's statistics pair on. ``ci95`` (optional): 95% percentile bootstrap intervals that
        resample *subjects* (frames of one person are not independent draws).
        ``chance``: what a model naming |Pa(ĉ)| AUs at random would score — the floor to read the
        agreement (against Pa(ĉ) and Pa(y)) and precision against.
        """
        sc = self.score(signs)
        N = len(self.labels)
        everything = np.arange(N)
        out = self._summary(sc, everything)
        out["au_detection"] = {r.pop("au"): r for r in au_detection(self.z, self.au_targets, self.au_mask, self.aus)}
        out["chance"] = sc.sets.chance_summary()
        pred = self.predicted
        mean_delta = self.mean_delta
        per_class = {}
        for c, name in enumerate(self.classes):
            lab, sel = np.flatnonzero(self.labels == c), np.flatnonzero(pred == c)
            per_class[name] = {
                "n_labelled": int(len(lab)),
                "n_predicted": int(len(sel)),
                "recall": float((pred[lab] == c).mean()) if len(lab) else None,
                "cf_sensitivity": pooled_ratio(sc.sens_hits[lab], sc.sens_pairs[lab]),
                "cf_invariance": pooled_ratio(sc.inv_hits[lab], sc.inv_pairs[lab]),
                **sc.sets.summary(sel),  # the named-AU figures of the decisions for c
                "mean_effect": {a: float(v) for a, v in zip(self.aus, mean_delta[:, c])} if N else {},
            }
        out["per_class"] = per_class
        units = sorted(set(self.subjects.tolist()))
        if per_subject:
            out["per_subject"] = {u: self._summary(sc, np.flatnonzero(self.subjects == u)) for u in units}
        if ci:
            from facr.audit.stats import cluster_bootstrap_ratio

            correct = pred == self.labels
            unit_of = np.searchsorted(np.array(units, dtype=object), self.subjects)
            out["ci95"] = {}
            for key in CI_KEYS:
                if out.get(key) is None:
                    out["ci95"][key] = None
                    continue
                num, den = sc.ratio_parts(key, correct)
                u_num = np.bincount(unit_of, weights=num, minlength=len(units))
                u_den = np.bincount(unit_of, weights=den, minlength=len(units))
                out["ci95"][key] = cluster_bootstrap_ratio(u_num, u_den, n_resamples=n_resamples, seed=seed)
            out["n_subjects"] = len(units)
        return out


def au_f1(z: np.ndarray, targets: np.ndarray, mask: np.ndarray, threshold: float = ACTIVE) -> float | None:
    """Macro F1 of AU detection (z > threshold) over coded AUs that occur at least once."""
    scores = [row["f1"] for row in au_detection(z, targets, mask, threshold=threshold) if row["n_positive"]]
    return float(np.mean(scores)) if scores else None


def au_detection(z: np.ndarray, targets: np.ndarray, mask: np.ndarray, aus: list[str] | None = None,
                 threshold: float = ACTIVE) -> list[dict]:
    """Per AU, detection by z > threshold on the faces where it is coded: ``f1``, ``precision``, ``recall``
    (None where undefined: no face called present, no face labelled present), ``n_coded``, ``n_positive``,
    ``n_called`` (the per-AU table of BP4D / DISFA papers; :func:`au_f1` is the mean of its F1 over the AUs
    that occur)."""
    rows = []
    for k in range(z.shape[1]):
        m = mask[:, k] > 0
        truth, called = targets[m, k] > 0, z[m, k] > threshold
        tp, n_pos, n_called = int((truth & called).sum()), int(truth.sum()), int(called.sum())
        rows.append({"au": aus[k] if aus else k, "n_coded": int(m.sum()), "n_positive": n_pos, "n_called": n_called,
                     "precision": tp / n_called if n_called else None, "recall": tp / n_pos if n_pos else None,
                     "f1": 2 * tp / (n_pos + n_called) if n_pos + n_called else None})
    return rows


@torch.no_grad()
def _concat(parts: list[torch.Tensor], empty_shape: tuple[int, ...]) -> np.ndarray:
    """The batches' tensors as one array; an empty float32 array of ``empty_shape`` when there were none."""
    return torch.cat(parts).numpy() if parts else np.zeros(empty_shape, dtype=np.float32)


def run_reasoner(model, dataset, signs: torch.Tensor | np.ndarray, *, epsilon: float = 0.1,
                 margin: float | None = None, batch_size: int = 128, num_workers: int = 0, scope: str = "all",
                 pain_class: str = "pain", progress: bool = False) -> Evaluation:
    """One pass of ``model`` over a :class:`~facr.data.torch_data.FaceTorchDataset`, keeping ŷ, z
    and every do(z_k = 0) counterfactual. ``signs`` ([K, C]) is the graph the pass is scored against
    by default (:meth:`Evaluation.summarize` takes any other)."""
    from tqdm.auto import tqdm

    model.eval()
    loader = make_loader(dataset, batch_size, num_workers=num_workers)
    device = next(model.parameters()).device
    logits, cfs, zs = [], [], []
    for batch in tqdm(loader, desc="audit", unit="batch", disable=not progress, dynamic_ncols=True):
        out = model(batch["pixel_values"].to(device), effects="batched")
        logits.append(out.logits.float().cpu())
        cfs.append(out.effects.cf_logits.float().cpu())
        zs.append(out.z.float().cpu())
    K, C = len(dataset.aus), len(dataset.task.classes)
    return Evaluation(
        classes=list(dataset.task.classes), aus=list(dataset.aus), labels=np.asarray(dataset.labels),
        logits=_concat(logits, (0, C)), cf_logits=_concat(cfs, (0, K, C)), z=_concat(zs, (0, K)),
        au_targets=np.asarray(dataset.au_targets), au_mask=np.asarray(dataset.au_mask),
        subjects=np.array([str(r.subject) for r in dataset.records], dtype=object),
        signs=np.asarray(torch.as_tensor(signs).cpu()), epsilon=epsilon, margin=margin, scope=scope,
        pain_class=pain_class)


def evaluate_reasoner(model, dataset, signs: torch.Tensor, *, epsilon: float = 0.1, margin: float | None = None,
                      batch_size: int = 128, num_workers: int = 0, scope: str = "all",
                      pain_class: str = "pain") -> Evaluation:
    """:func:`run_reasoner` with ``metrics`` filled in against ``signs`` (the training loop's view)."""
    ev = run_reasoner(model, dataset, signs, epsilon=epsilon, margin=margin, batch_size=batch_size,
                      num_workers=num_workers, scope=scope, pain_class=pain_class)
    ev.metrics = ev.summarize()
    return ev
