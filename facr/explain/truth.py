"""Ground-truth AU regions of a record, one place for the AGCM map loss and the region audit.

- The synthetic benchmark stores, per image and AU, the mask of where the AU is drawn
  (``facr.data.synth.record_masks``, at 1/4 of the image side): exact ground truth.
- Real faces with 68 landmarks (AffectNet ships them) get landmark-derived ROI maps
  (:func:`facr.explain.regions.landmark_roi_masks`), the AGCM / EAC-Net way.
- Anything else has no region: ``defined`` is False and the AU is skipped.

Masks are at ``size // 4`` (the benchmark's stride), in the frame of the image the model sees.
"""

from __future__ import annotations

import numpy as np

from facr.data.records import FaceRecord

STRIDE = 4


def region_masks(record: FaceRecord, aus: list[str], size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(masks bool [K, size/4, size/4], defined bool [K])`` for ``aus`` of ``record``."""
    m = size // STRIDE
    out = np.zeros((len(aus), m, m), dtype=bool)
    defined = np.zeros(len(aus), dtype=bool)
    meta = record.meta or {}
    if meta.get("au_masks") is not None and meta.get("mask_aus"):
        from facr.data.synth import record_masks

        masks = record_masks(record)
        if masks.shape[1] != m:
            masks = _resize_bool(masks, m)
        order = {a: i for i, a in enumerate(meta["mask_aus"])}
        for k, a in enumerate(aus):
            if a in order:
                out[k], defined[k] = masks[order[a]], True
        return out, defined
    landmarks = meta.get("landmarks")
    if landmarks is not None:
        from facr.explain.regions import landmark_roi_masks

        wh = _image_wh(record)
        if wh is None:
            return out, defined
        masks, ok = landmark_roi_masks(np.asarray(landmarks, dtype=np.float32), wh, (m, m), list(aus))
        return np.asarray(masks, dtype=bool), np.asarray(ok, dtype=bool)
    return out, defined


def drawn(record: FaceRecord, aus: list[str]) -> np.ndarray:
    """bool [K]: the AUs present in this face (intensity > 0 where coded, else presence 1) — the
    instances a region map is scored on."""
    out = np.zeros(len(aus), dtype=bool)
    for k, a in enumerate(aus):
        inten = record.au_intensity.get(a)
        pres = record.au_presence.get(a)
        out[k] = (inten is not None and inten > 0) or (inten is None and pres == 1)
    return out


def _image_wh(record: FaceRecord) -> tuple[int, int] | None:
    if isinstance(record.image, np.ndarray):
        return int(record.image.shape[1]), int(record.image.shape[0])
    from PIL import Image

    try:
        with Image.open(record.image) as im:
            return im.size
    except OSError:
        return None


def _resize_bool(masks: np.ndarray, m: int) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(masks.astype(np.float32))[None]
    return (F.interpolate(t, size=(m, m), mode="nearest")[0] > 0.5).numpy()
