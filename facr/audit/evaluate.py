"""Run a reasoner over a dataset once and compute every latent-level figure from that pass.

Used by training (per-epoch validation, the final ``metrics.json``) and by ``facr audit``, so
the numbers a run reports and the numbers an audit reports come from the same code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from facr.audit.metrics import PairCounts, counterfactual_pairs, invoked_aus, mean_defined, recognition, set_scores
from facr.data.torch_data import make_loader


@dataclass
class Evaluation:
    """Per-sample outputs of one pass and the summary figures."""

    classes: list[str]
    aus: list[str]
    labels: np.ndarray  # [N]
    logits: np.ndarray  # [N, C]
    z: np.ndarray  # [N, K]
    delta_pred: np.ndarray  # Δ on the predicted class, [N, K]
    invoked: list[list[str]]
    pairs: PairCounts
    metrics: dict = field(default_factory=dict)

    @property
    def predicted(self) -> np.ndarray:
        return self.logits.argmax(axis=1)


def au_f1(z: np.ndarray, targets: np.ndarray, mask: np.ndarray, threshold: float = 0.5) -> float | None:
    """Macro F1 of AU detection (z > threshold) over coded AUs that occur at least once."""
    from sklearn.metrics import f1_score

    scores = []
    for k in range(z.shape[1]):
        m = mask[:, k] > 0
        if m.sum() == 0 or targets[m, k].sum() == 0:
            continue
        scores.append(f1_score(targets[m, k], z[m, k] > threshold, zero_division=0))
    return float(np.mean(scores)) if scores else None


@torch.no_grad()
def evaluate_reasoner(model, dataset, signs: torch.Tensor, *, epsilon: float = 0.1, margin: float | None = None,
                      batch_size: int = 128, num_workers: int = 0, scope: str = "all",
                      pain_class: str = "pain", parent_sets: Sequence[set[str]] | None = None) -> Evaluation:
    """Evaluate ``model`` on a :class:`~facr.data.torch_data.FaceTorchDataset`.

    ``signs``: the [K, C] sign matrix of the graph the model is audited against (its own, or
    another — e.g. the true graph of a synthetic benchmark). Sensitivity and invariance use the
    labelled class; invoked AUs and the set metrics use the predicted class.
    """
    model.eval()
    classes, aus = list(dataset.task.classes), list(dataset.aus)
    loader = make_loader(dataset, batch_size, num_workers=num_workers)
    device = next(model.parameters()).device
    logits, zs, deltas, labels, targets, masks = [], [], [], [], [], []
    pairs = PairCounts.zeros(len(classes))
    named: list[list[str]] = []
    for batch in loader:
        out = model(batch["pixel_values"].to(device), effects="batched")
        y = batch["labels"].to(device)
        pairs = pairs + counterfactual_pairs(out.effects, signs.to(device), y, out.z, epsilon, margin, scope)
        pred = out.logits.argmax(dim=1)
        for idx in invoked_aus(out.effects, signs.to(device), pred):
            named.append([aus[k] for k in idx])
        logits.append(out.logits.float().cpu())
        zs.append(out.z.float().cpu())
        deltas.append(out.effects.for_class(pred).float().cpu())
        labels.append(batch["labels"])
        targets.append(batch["au_targets"])
        masks.append(batch["au_mask"])
    logits_np = torch.cat(logits).numpy()
    z_np = torch.cat(zs).numpy()
    y_np = torch.cat(labels).numpy()
    t_np, m_np = torch.cat(targets).numpy(), torch.cat(masks).numpy()
    pred_np = logits_np.argmax(axis=1)
    s_np = signs.cpu().numpy()
    if parent_sets is None:
        parent_sets = [{aus[k] for k in np.flatnonzero(s_np[:, c])} for c in range(len(classes))]
    active = [{aus[k] for k in np.flatnonzero((m_np[i] > 0) & (t_np[i] > 0))} if m_np[i].any() else None
              for i in range(len(y_np))]
    has_pain = pain_class in classes
    sets = set_scores(
        named=[set(n) for n in named],
        parents=[parent_sets[p] for p in pred_np],
        active=active,
        is_pain=[has_pain and classes[p] == pain_class for p in pred_np],
    )
    metrics = recognition(y_np, logits_np, classes)
    metrics.update({
        "n_samples": int(len(y_np)),
        "au_f1": au_f1(z_np, t_np, m_np),
        "cf_sensitivity": pairs.sensitivity,
        "cf_invariance": pairs.invariance,
        "graph_causal_agreement": mean_defined(sets.graph_agreement),
        "pspi_agreement": mean_defined(sets.pspi_agreement) if has_pain else None,
        "active_au_precision": mean_defined(sets.active_precision),
        "active_au_recall": mean_defined(sets.active_recall),
        "aus_per_frame": float(np.mean(sets.n_named)) if sets.n_named else None,
    })
    per_class = {}
    for c, name in enumerate(classes):
        sel = pred_np == c
        lab = y_np == c
        per_class[name] = {
            "n_labelled": int(lab.sum()),
            "n_predicted": int(sel.sum()),
            "recall": float((pred_np[lab] == c).mean()) if lab.any() else None,
            "cf_sensitivity": float(pairs.sens_hits[c] / pairs.sens_pairs[c]) if pairs.sens_pairs[c] else None,
            "cf_invariance": float(pairs.inv_hits[c] / pairs.inv_pairs[c]) if pairs.inv_pairs[c] else None,
            "graph_causal_agreement": mean_defined(np.array(sets.graph_agreement, dtype=object)[sel]),
            "active_au_precision": mean_defined(np.array(sets.active_precision, dtype=object)[sel]),
            "active_au_recall": mean_defined(np.array(sets.active_recall, dtype=object)[sel]),
        }
    metrics["per_class"] = per_class
    return Evaluation(classes, aus, y_np, logits_np, z_np, torch.cat(deltas).numpy(), named, pairs, metrics)
