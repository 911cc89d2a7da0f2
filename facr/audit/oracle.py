"""Oracle figures on the synthetic benchmark, where the causes of every image are known.

* **True-parent agreement / sensitivity / invariance**: the audit against the benchmark's own
  ``graph.json`` (the SCM's signed AU→class edges) instead of the graph the model was trained with.
* **Shortcut reliance**: the benchmark plants a background hue that tracks the class in
  train/val. Each audited image is re-rendered with the hue of every shortcut class in turn
  (the image-level intervention do(cue = c')); the cue's effect on the predicted logit is
  ŷ_ĉ(x) − mean_c' ŷ_ĉ(x^{do(cue = c')}), the effect of the hue against its test-time (uniformly
  random) distribution. A prediction *relies on the shortcut* when that effect is larger in
  magnitude than the largest single-AU effect max_k |Δ_kĉ| — the decision moves more with the
  background than with any AU cause. Effects below :data:`ROUNDING` are float rounding (the same
  logit computed in another batch), not effects: a class whose logit nothing moves (neutral under
  ``head: graph``) does not rely on the hue by a rounding error. ``prediction_follows_cue`` is the share of predictions
  equal to the class whose hue the image shows (chance: 1/C on the test split).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from facr.audit.evaluate import Evaluation
from facr.data.torch_data import FaceTorchDataset

ROUNDING = 1e-5  # logit differences at or below this are float rounding, not an effect


def is_synth(root: str | Path) -> bool:
    return (Path(root) / "config.json").exists() and (Path(root) / "graph.json").exists()


@torch.no_grad()
def shortcut_reliance(model, dataset: FaceTorchDataset, ev: Evaluation, root: str | Path,
                      batch_size: int = 128) -> dict:
    """Shortcut-reliance figures of ``model`` on ``dataset`` (records of the synth folder ``root``,
    in the order of ``ev``)."""
    from facr.data.synth import SynthConfig, read_config, render_counterfactual, sample_scene

    doc = read_config(root)
    config = SynthConfig.from_stored(doc["config"])
    cue_classes = list(config.shortcut_classes)
    index = np.array([int(r.meta["index"]) for r in dataset.records], dtype=np.int64)
    pred = ev.predicted
    device = next(model.parameters()).device
    model.eval()

    def logits_for(images: np.ndarray) -> np.ndarray:
        recs = [replace(r, image=images[i]) for i, r in enumerate(dataset.records)]
        ds = FaceTorchDataset(recs, dataset.aus, dataset.task, dataset.image_size)
        out = []
        for start in range(0, len(ds), batch_size):
            batch = ds.__getitems__(list(range(start, min(start + batch_size, len(ds)))))
            out.append(model(batch["pixel_values"].to(device)).logits.float().cpu())
        return torch.cat(out).numpy()

    rows = np.arange(len(pred))  # [rows, pred]: each face's logit of its predicted class
    scene = sample_scene(config)
    cf = np.stack([logits_for(render_counterfactual(scene, index, cue=j))[rows, pred]
                   for j in range(len(cue_classes))], axis=1)
    cue_effect = ev.logits[rows, pred] - cf.mean(axis=1)
    max_au = np.abs(ev.delta_pred).max(axis=1)
    relies = np.abs(cue_effect) > np.maximum(max_au, ROUNDING)
    shown = np.array([str(r.meta.get("cue")) for r in dataset.records], dtype=object)  # the class whose hue shows
    follows = None
    if set(cue_classes) <= set(ev.classes):
        follows = float(np.mean(np.asarray(ev.classes, dtype=object)[pred] == shown))
    return {
        "shortcut_reliance": float(relies.mean()) if len(relies) else None,
        "cue_effect_mean_abs": float(np.abs(cue_effect).mean()) if len(relies) else None,
        "max_au_effect_mean": float(max_au.mean()) if len(relies) else None,
        "prediction_follows_cue": follows,
        "prediction_follows_cue_chance": 1.0 / len(cue_classes) if follows is not None else None,
        "shortcut_rate_train": float(config.shortcut),
    }


def oracle_figures(model, dataset: FaceTorchDataset, ev: Evaluation, root: str | Path, *,
                   shortcut: bool = True, batch_size: int = 128) -> dict:
    """Agreement with the true causal parents (and true-graph sensitivity / invariance), plus the
    shortcut figures, for a model audited on a synth folder. ``per_subject`` holds the true-parent
    agreement of each subject (the unit of the experiment statistics)."""
    from facr.causal import graph_signs
    from facr.graph import load_graph

    truth = load_graph(Path(root) / "graph.json")
    vs_truth = ev.summarize(graph_signs(truth, ev.aus, ev.classes).numpy(), per_subject=True)
    out = {
        "per_subject": {s: {"true_parent_agreement": row["graph_causal_agreement"]}
                        for s, row in vs_truth["per_subject"].items()},
        "true_graph": truth.name,
        "true_parent_agreement": vs_truth["graph_causal_agreement"],
        "true_parent_agreement_signed": vs_truth["graph_causal_agreement_signed"],
        "true_parent_agreement_chance": vs_truth["chance"]["graph_causal_agreement"],
        "true_graph_sensitivity": vs_truth["cf_sensitivity"],
        "true_graph_invariance": vs_truth["cf_invariance"],
    }
    if shortcut and len(dataset):
        out.update(shortcut_reliance(model, dataset, ev, root, batch_size))
    return out
