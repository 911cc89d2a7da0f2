"""The region audit: are the AU maps where the AUs are, and do CE-FAM's contributions agree with do()?

Used by ``facr audit --maps`` (as ``metrics["maps"]``) and by the maps benchmark. For every face and
every AU instance — an AU the face shows (labelled present; on a dataset that codes no AU, one the
model detects, z_k ≥ ½) that has a ground-truth region (:mod:`facr.explain.truth`) — each map
method's map is scored with NRA, EPG and hit rate (:class:`facr.explain.regions.RegionScores`).
The ``random`` method is the baseline.

The contribution agreement compares, per face and class c, CE-FAM's channel-masking contribution of
each AU to p^c with facr's intervention effect Δ_kc = ŷ_c − ŷ_c^{do(z_k = 0)}: Spearman's ρ over the
K AUs, for the faces labelled c (mean over faces), and between their mean vectors.
"""

from __future__ import annotations

import numpy as np
import torch

from facr.au import ACTIVE
from facr.explain import maps as M
from facr.explain.regions import RegionScores
from facr.explain.truth import drawn, region_masks

PRIMARY = {"agcm": "agcm", "vit": "rollout", "resnet": "gradcam"}


def primary_method(model) -> str:
    """The map a model is shown with by default: its own attention (AGCM head, attention readout), ViT
    rollout, ResNet Grad-CAM."""
    if model.config.head == "agcm":
        return "agcm"
    if model.config.au_readout == "attention":
        return "attention"
    return PRIMARY[model.encoder.kind]


def maps_audit(model, dataset, methods: list[str] | None = None, *, batch_size: int = 16, seed: int = 0,
               contributions: bool = True, progress: bool = False) -> dict:
    """Score ``methods`` (default: every method that applies) on a
    :class:`~facr.data.torch_data.FaceTorchDataset`; JSON-able dict."""
    from scipy.stats import spearmanr
    from tqdm.auto import tqdm

    methods = methods or M.methods_for(model)
    for m in methods:
        problem = M.available(model, m)
        if problem:
            from facr.errors import FacrError

            raise FacrError(None, f"--map-method {m}: {problem}")
    aus, size = list(model.config.aus), dataset.image_size
    scores = {m: RegionScores(seed=seed) for m in methods}
    sources: set[str] = set()
    classes = list(model.config.classes)
    rho_faces: dict[int, list[float]] = {}
    contrib_sum = np.zeros((len(classes), len(aus)))
    delta_sum = np.zeros((len(classes), len(aus)))
    n_class = np.zeros(len(classes), dtype=int)
    wants_contrib = contributions and "cefam" in methods
    device = next(model.parameters()).device
    n_images = len(dataset)
    for start in tqdm(range(0, n_images, batch_size), desc="maps", unit="batch", disable=not progress,
                      dynamic_ncols=True):
        idx = np.arange(start, min(start + batch_size, n_images))
        x = dataset.images(idx).to(device)
        records = [dataset.records[i] for i in idx]
        truth = [region_masks(r, aus, size) for r in records]
        with torch.no_grad():
            out = model(x, effects="batched")
        z = out.z.cpu().numpy()
        for r, (_, defined) in zip(records, truth):
            if defined.any():  # a face with no true region (no masks, no landmarks) names no source
                sources.add("benchmark masks" if (r.meta or {}).get("au_masks") is not None else "landmark ROI")
        instances = []
        for b, r in enumerate(records):
            present = drawn(r, aus)
            coded = any(r.au_presence.get(a) is not None or r.au_intensity.get(a) is not None for a in aus)
            shows = present if coded else z[b] >= ACTIVE
            instances.append([k for k in range(len(aus)) if shows[k] and truth[b][1][k]])
        for method in methods:
            result = M.au_maps(model, x, method, seed=seed + start)
            maps = result.maps.numpy()
            for b in range(len(idx)):
                for k in instances[b]:
                    scores[method].add(aus[k], maps[b, k], truth[b][0][k])
            if method == "cefam" and wants_contrib:
                contrib = result.contribution.numpy()  # [B, K, C]
                delta = out.effects.delta.cpu().numpy()  # [B, K, C]
                for b, i in enumerate(idx):
                    c = int(dataset.labels[i])
                    a, d = contrib[b, :, c], delta[b, :, c]
                    if np.ptp(a) > 0 and np.ptp(d) > 0:
                        rho_faces.setdefault(c, []).append(float(spearmanr(a, d).statistic))
                    contrib_sum[c] += a
                    delta_sum[c] += d
                    n_class[c] += 1
    out = {"methods": {m: scores[m].summary() for m in methods}, "primary": primary_method(model),
           "ground_truth": " + ".join(sorted(sources)) or "none", "n_images": int(n_images),
           "instances": "AUs the face shows (labelled present; z_k >= 0.5 where the data codes no AU) with a region"}
    if wants_contrib:
        per_class = {}
        for c, name in enumerate(classes):
            if n_class[c] == 0:
                continue
            mean_a, mean_d = contrib_sum[c] / n_class[c], delta_sum[c] / n_class[c]
            varies = np.ptp(mean_a) > 0 and np.ptp(mean_d) > 0  # Spearman's rho is undefined on a constant
            rho_mean = float(spearmanr(mean_a, mean_d).statistic) if varies else None
            faces = rho_faces.get(c, [])
            per_class[name] = {"n": int(n_class[c]), "rho_mean_vectors": rho_mean,
                               "rho_per_face": float(np.mean(faces)) if faces else None,
                               "top_contribution": aus[int(np.argmax(mean_a))],
                               "top_do_effect": aus[int(np.argmax(mean_d))]}
        out["contribution_agreement"] = {
            "what": "Spearman rho over AUs between CE-FAM channel-masking contributions to p_c and do(z_k=0) effects "
                    "on the logit of c, faces labelled c",
            "per_class": per_class,
            "mean_rho_mean_vectors": _mean([v["rho_mean_vectors"] for v in per_class.values()]),
            "mean_rho_per_face": _mean([v["rho_per_face"] for v in per_class.values()]),
        }
    return out


def _mean(values) -> float | None:
    values = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(values)) if values else None
