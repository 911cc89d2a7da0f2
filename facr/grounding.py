"""Training that grounds z in the face (issue 21): z_k must read AU k's pixels, not the background.

FACR's objective makes ŷ follow z (L_sens, L_inv); nothing in it makes z follow the face. On the
benchmark's shortcut split (the background hue tracks the class in train/val) z learns the hue: the
prototype AUs of a class are present whenever its hue shows, so the hue lowers the AU BCE too. Four
options, each off by default so that the option off is its control (:class:`GroundingConfig`):

* ``background`` — augmentation that needs no renderer and so works on real data: in that share of
  the training images every pixel outside the face is replaced by a random colour with noise
  (:meth:`facr.data.torch_data.FaceTorchDataset.randomise_background`). The face is the benchmark's
  outline (:func:`facr.data.synth.face_masks`) or the convex hull of a real face's 68 landmarks
  (:func:`face_masks_for`).
* ``au_pairs`` / ``nuisance_pairs`` — counterfactual pairs from the benchmark's renderer
  (:func:`facr.data.synth.render_intervention`): per batch, that many images x re-rendered as
  x' = x^{do(AU_k = 0)} for a random active AU k (``au_pair_share`` > 0: with each other
  active AU also removed with that probability, x^{do(AU_S = 0)}, so that a pair breaks the AU
  co-occurrences z otherwise reads an AU from), and as x'' with a nuisance changed (background hue,
  identity — another *training* subject's face —, pose, light).
* ``decorrelate`` — that share of the training faces redrawn once, before training, by the
  benchmark's renderer with AUs drawn independently of each other and of the emotion
  (:func:`redraw_decorrelated`). They train z only (AU BCE, map loss); the class terms skip them. In
  the benchmark, as in real faces, AUs co-occur (a class's prototype AUs together); z then reads AU
  k from its companions and keeps "seeing" it once it is gone from the pixels. Where nothing
  co-occurs with AU k, z_k can only read AU k.
* ``occlusion_pairs`` — the renderer-free pairs: x' = x with an active AU k's region inpainted
  (:func:`facr.audit.pixel.occlude`, the pixel audit's own fill), the region from the benchmark's
  masks or the landmark ROIs. An occlusion hides every AU whose region it covers: the AUs covered
  for at least half their region must drop, those it does not touch must stay, the rest are free.

Each pair is augmented exactly as its original (flip, shift, background colour), forwarded in the
same batch (one set of batch-norm statistics) and scored by

    L_ground = λ_pair · BCE(z(x'), a')  over the AUs whose label a' of x' is known
             + λ_keep · mean_{(x', j) ∈ S} (z_j(x') − sg(z_j(x)))²
             + λ_nuis · mean_{x'', j} (z_j(x'') − sg(z_j(x)))²

a' is x's labels with the removed AUs (k; under occlusion every AU covered for at least half its
region) at 0 — so z_k must drop —; an AU the occlusion covers in part has no known label. S holds
the AUs the intervention leaves untouched (their z must stay); sg is stop-gradient. The BCE is the
run's AU BCE (:func:`facr.losses.au_bce`, its positive weights too), each entry weighing what an entry of the
batch's BCE weighs: a loss on the removed AUs alone, averaged over those few entries, outweighs the
batch's positives ~70 to 1 and drives every z_k to 0 (measured: AU F1 0.01 after two epochs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from facr.errors import FacrError

if TYPE_CHECKING:
    from facr.data.records import FaceRecord
    from facr.data.torch_data import FaceTorchDataset

NUISANCES = ("hue", "identity", "pose", "light")  # facr.data.synth.NUISANCE_CHANGES (not imported: torch-free config)
COVERED = 0.5  # an occlusion hides an AU when it covers at least this share of the AU's region


@dataclass
class GroundingConfig:
    """The grounding options of a run (``grounding:`` in a training YAML); all off by default."""

    background: float = 0.0  # share of training images whose pixels outside the face are randomised
    au_pairs: int = 0  # per batch, images re-rendered with one active AU removed (benchmark only)
    # and each of the face's other active AUs removed too with this probability: 0 is the single-AU pair
    # x^{do(AU_k = 0)}; above 0 a pair also breaks the co-occurrences z otherwise reads an AU from
    au_pair_share: float = 0.0
    nuisance_pairs: int = 0  # per batch, images re-rendered with one nuisance changed (benchmark only)
    nuisances: list[str] = field(default_factory=lambda: list(NUISANCES))
    occlusion_pairs: int = 0  # per batch, images with one active AU's region inpainted (any data with AU regions)
    decorrelate: float = 0.0  # share of training faces redrawn once with independent AUs, to train z only
    lambda_pair: float = 1.0  # λ_pair: AU BCE on the pair images with their known labels (removed AUs at 0)
    lambda_keep: float = 1.0  # λ_keep: (z_j(x') − z_j(x))² for the AUs it leaves
    lambda_nuisance: float = 1.0  # λ_nuis: (z(x'') − z(x))² under a nuisance change

    def __post_init__(self):
        for name in ("background", "au_pair_share"):
            if not (0.0 <= getattr(self, name) <= 1.0):
                raise ValueError(f"{name} must be a share in [0, 1], got {getattr(self, name)}")
        if not (0.0 <= self.decorrelate < 1.0):
            raise ValueError(f"decorrelate must be a share in [0, 1) (at 1 no face is left for the class terms), "
                             f"got {self.decorrelate}")
        for name in ("au_pairs", "nuisance_pairs", "occlusion_pairs"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("lambda_pair", "lambda_keep", "lambda_nuisance"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be >= 0, got {value}")
        bad = [n for n in self.nuisances if n not in NUISANCES]
        if bad:
            raise ValueError(f"nuisances must be among {', '.join(NUISANCES)}, got {bad[0]!r}")
        if self.nuisance_pairs and not self.nuisances:
            raise ValueError("nuisances: nuisance_pairs > 0 needs at least one nuisance")

    @property
    def pairs(self) -> int:
        """Pair images added to each batch."""
        return self.au_pairs + self.nuisance_pairs + self.occlusion_pairs

    @property
    def renders(self) -> bool:
        """Whether the options need the benchmark's renderer."""
        return self.au_pairs > 0 or self.nuisance_pairs > 0


# ------------------------------------------------------------------ the loss
@dataclass
class PairBatch:
    """The pair images of one batch and what each must do to z.

    ``images`` uint8 ``[M, S, S, 3]`` (augmented as their originals); ``ref`` ``[M]`` the row of
    each one's original in the batch; ``targets`` / ``known`` ``[M, K]``: each pair image's AU labels
    and where they are known; ``drop`` / ``keep`` bool ``[M, K]``: the AUs the intervention removes
    (their target is 0) / leaves untouched (z must stay); ``nuisance`` bool ``[M]``: a nuisance pair
    (every z_j must stay)."""

    images: torch.Tensor
    ref: torch.Tensor
    targets: torch.Tensor
    known: torch.Tensor
    drop: torch.Tensor
    keep: torch.Tensor
    nuisance: torch.Tensor

    def __len__(self) -> int:
        return len(self.ref)


@dataclass
class GroundingLoss:
    total: torch.Tensor
    pair: torch.Tensor
    keep: torch.Tensor
    nuisance: torch.Tensor

    def as_floats(self) -> dict[str, float]:
        return {f"g_{k}": float(getattr(self, k).detach()) for k in ("pair", "keep", "nuisance")}


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1)


def grounding_loss(z_logits: torch.Tensor, z: torch.Tensor, z_ref: torch.Tensor, pairs: PairBatch,
                   cfg: GroundingConfig, pos_weight: torch.Tensor | None = None) -> GroundingLoss:
    """L_ground (module docstring) from the pair rows' ``z_logits`` / ``z`` ``[M, K]`` and their
    originals' ``z_ref`` ``[M, K]``; ``pos_weight``: the run's AU BCE positive weights. The original's
    z is the target, without a gradient (as consistency training does): pulled from both sides, a
    pair is matched as well by a constant z, and a run fell into it (AU F1 0 for two epochs, 0.39
    after sixteen). Zero for a z that reads exactly the AUs drawn."""
    from facr.losses import au_bce

    z_logits, z, z_ref = z_logits.float(), z.float(), z_ref.detach().float()
    pair = au_bce(z_logits, pairs.targets, pairs.known, pos_weight)
    # squared, not absolute: near agreement (most entries: an absent AU on both sides) |Δ| sends a
    # gradient of full size and random sign, which Adam turns into noise on every encoder weight
    shift = (z - z_ref).pow(2)
    keep = _masked_mean(shift, pairs.keep)
    nuisance = _masked_mean(shift, pairs.nuisance[:, None].expand_as(shift))
    total = cfg.lambda_pair * pair + cfg.lambda_keep * keep + cfg.lambda_nuisance * nuisance
    return GroundingLoss(total, pair, keep, nuisance)


# ------------------------------------------------------------------ face masks
def landmark_face_mask(landmarks, image_wh, size: int) -> np.ndarray:
    """Bool ``[size, size]``: the convex hull of a face's landmarks (any count, in the pixels of an
    image ``image_wh`` wide and high), in the frame of that image resized to ``size``."""
    import cv2

    pts = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)
    scale = np.array([size / image_wh[0], size / image_wh[1]])
    hull = cv2.convexHull(np.rint(pts * scale).astype(np.int32))
    out = np.zeros((size, size), dtype=np.uint8)
    cv2.fillConvexPoly(out, hull, 1)
    return out.astype(bool)


def face_masks_for(records: list[FaceRecord], size: int, data_root: str | None) -> tuple[np.ndarray, np.ndarray]:
    """``(face bool [N, size, size], known bool [N])`` for ``records``: the benchmark's face outline
    (re-drawn from the folder's scene), else the hull of 68 landmarks in ``meta["landmarks"]``; a
    record with neither is all True (nothing of it counts as background) and not ``known``."""
    from facr.audit.oracle import is_synth
    from facr.explain.truth import _image_wh

    face = np.ones((len(records), size, size), dtype=bool)
    known = np.zeros(len(records), dtype=bool)
    synth = [i for i, r in enumerate(records) if "index" in (r.meta or {})]
    if synth and data_root is not None and is_synth(data_root):
        from facr.audit.pixel import resize_mask
        from facr.data.synth import face_masks, read_scene

        scene = read_scene(data_root)
        masks = face_masks(scene, [int(records[i].meta["index"]) for i in synth])
        for i, m in zip(synth, masks):
            face[i] = resize_mask(m, (size, size))
        known[synth] = True
    for i, r in enumerate(records):
        lm = (r.meta or {}).get("landmarks")
        if known[i] or lm is None:
            continue
        wh = _image_wh(r)
        if wh is not None:
            face[i], known[i] = landmark_face_mask(lm, wh, size), True
    return face, known


# ------------------------------------------------------------------ pairs
class PairMaker:
    """Builds the :class:`PairBatch` of each training batch of ``dataset`` as ``cfg`` says.

    Which images and AUs are drawn is a function of (seed, epoch, batch) only, so a resumed run
    makes the same pairs."""

    def __init__(self, cfg: GroundingConfig, dataset: FaceTorchDataset, data_root: str | None, seed: int = 0,
                 scene=None):
        """``scene``: the benchmark's scene as training sees it (:func:`redraw_decorrelated`'s; None: read)."""
        self.cfg, self.ds, self.seed = cfg, dataset, seed
        self.scene = None
        if cfg.renders:
            from facr.data.synth import SYNTH_AUS

            self.scene = scene if scene is not None else \
                _synth_scene(dataset, data_root, "grounding.au_pairs / nuisance_pairs re-render faces and need")
            self.index = np.array([int(r.meta["index"]) for r in dataset.records], dtype=np.int64)
            self.drawn = np.array([a in SYNTH_AUS for a in dataset.aus], dtype=bool)
            # identity changes draw only training faces: no held-out subject is ever shown
            self.subjects = np.unique(self.scene.subject[self.index])
            if cfg.nuisance_pairs and "identity" in cfg.nuisances and len(self.subjects) < 2:
                raise FacrError(data_root, "grounding.nuisances: identity needs at least two training subjects")
        if cfg.occlusion_pairs:
            if dataset.roi is None:
                raise ValueError("occlusion_pairs: build the dataset with rois=True")
            if not dataset.roi_mask.any():
                raise FacrError(data_root, "grounding.occlusion_pairs needs AU regions: the synthetic benchmark's "
                                           "masks, or 68 landmarks in the records' meta")

    def __call__(self, batch_index, epoch: int, step: int) -> PairBatch | None:
        """The pairs of the batch whose dataset rows are ``batch_index`` (``batch["index"]``)."""
        if self.cfg.pairs == 0:
            return None
        rows_all = np.asarray(batch_index, dtype=np.int64)
        rng = np.random.default_rng([self.seed, epoch, step, 0x6A09])
        parts = []
        if self.cfg.au_pairs:
            parts.append(self._au_pairs(rows_all, rng))
        if self.cfg.nuisance_pairs:
            parts.append(self._nuisance_pairs(rows_all, rng))
        if self.cfg.occlusion_pairs:
            parts.append(self._occlusion_pairs(rows_all, rng))
        parts = [p for p in parts if p is not None]
        if not parts:
            return None
        ref = np.concatenate([p[0] for p in parts])
        images = np.concatenate([p[1] for p in parts])
        face = None
        if self.ds.face is not None:
            face = np.concatenate([p[2] if p[2] is not None else self.ds.face[rows_all[p[0]]] for p in parts])
        pixels = self.ds.augment_images(torch.from_numpy(images), rows_all[ref], face)
        drop, known, keep = (np.concatenate([p[j] for p in parts]) for j in (3, 4, 5))
        targets = np.where(drop, 0.0, self.ds.au_targets[rows_all[ref]]).astype(np.float32)
        return PairBatch(pixels, torch.from_numpy(ref), torch.from_numpy(targets), torch.from_numpy(known),
                         torch.from_numpy(drop), torch.from_numpy(keep),
                         torch.from_numpy(np.concatenate([p[6] for p in parts])))

    # each part: (ref rows in the batch, raw images, face masks or None, drop, known, keep, nuisance flags)
    def _pick(self, active: np.ndarray, n: int, rng) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``n`` batch rows with an active AU (``active`` bool [B, K]) and one such AU each, at
        random. (Drawing the AU by rarity, so that AU14 and AU17 got pairs, starved the common AUs
        the pixel audit mostly scores: pixel AU sensitivity 0.29 with 16 rarity pairs, 0.33 with 32
        uniform ones, on the seed-5 benchmark.)"""
        rows = rng.permutation(np.flatnonzero(active.any(axis=1)))[:n]
        cols = np.array([rng.choice(np.flatnonzero(active[r])) for r in rows], dtype=np.int64)
        return rows, cols

    def _sized(self, images: np.ndarray, face: np.ndarray | None):
        """Rendered rows at the dataset's image size (the benchmark may be drawn larger)."""
        from facr.audit.pixel import resize_mask, to_model_size

        size = self.ds.image_size
        images = to_model_size(images, size)
        if face is not None and face.shape[1] != size:
            face = np.stack([resize_mask(f, (size, size)) for f in face])
        return images, face

    def _au_pairs(self, rows_all: np.ndarray, rng):
        from facr.data.synth import face_masks, render_intervention

        ds = self.ds
        active = (ds.au_targets[rows_all] > 0.5) & (ds.au_mask[rows_all] > 0) & self.drawn[None, :]
        rows, cols = self._pick(active, self.cfg.au_pairs, rng)
        if not len(rows):
            return None
        drop = active[rows] & (rng.random(active[rows].shape) < self.cfg.au_pair_share)
        drop[np.arange(len(rows)), cols] = True
        sidx, names = self.index[rows_all[rows]], [[ds.aus[k] for k in np.flatnonzero(d)] for d in drop]
        images = render_intervention(self.scene, sidx, au=names, value=0.0)
        face = face_masks(self.scene, sidx, au=names, value=0.0) if ds.face is not None else None
        images, face = self._sized(images, face)
        coded = ds.au_mask[rows_all[rows]] > 0
        return rows, images, face, drop, coded, coded & ~drop, np.zeros(len(rows), dtype=bool)

    def _nuisance_pairs(self, rows_all: np.ndarray, rng):
        from facr.data.synth import face_masks, render_intervention

        ds = self.ds
        rows = rng.permutation(len(rows_all))[: self.cfg.nuisance_pairs]
        change = rng.choice(self.cfg.nuisances, size=len(rows))
        size = self.scene.config.size
        images = np.empty((len(rows), size, size, 3), dtype=np.uint8)
        face = np.empty((len(rows), size, size), dtype=bool) if ds.face is not None else None
        for c in np.unique(change):
            sel = np.flatnonzero(change == c)
            sidx = self.index[rows_all[rows[sel]]]
            images[sel] = render_intervention(self.scene, sidx, nuisance=str(c), subjects=self.subjects)
            if face is not None:
                face[sel] = face_masks(self.scene, sidx, nuisance=str(c), subjects=self.subjects)
        images, face = self._sized(images, face)
        none = np.zeros((len(rows), len(ds.aus)), dtype=bool)
        return rows, images, face, none, ds.au_mask[rows_all[rows]] > 0, none, np.ones(len(rows), dtype=bool)

    def _occlusion_pairs(self, rows_all: np.ndarray, rng):
        from facr.audit.pixel import occlude

        ds = self.ds
        defined = ds.roi_mask[rows_all] > 0
        active = (ds.au_targets[rows_all] > 0.5) & (ds.au_mask[rows_all] > 0) & defined
        rows, cols = self._pick(active, self.cfg.occlusion_pairs, rng)
        if not len(rows):
            return None
        idx = rows_all[rows]
        raw = ds.raw_images(idx).numpy()
        regions = ds.roi[idx]  # [M, K, m, m]
        hidden = regions[np.arange(len(rows)), cols]  # the occluded region, [M, m, m]
        images = np.stack([occlude(raw[i], hidden[i]) for i in range(len(rows))])
        area = regions.sum(axis=(2, 3))
        overlap = (regions & hidden[:, None]).sum(axis=(2, 3))
        covered = overlap >= COVERED * np.maximum(area, 1)
        drop = defined[rows] & covered
        drop[np.arange(len(rows)), cols] = True
        keep = defined[rows] & (overlap == 0) & (ds.au_mask[idx] > 0)
        # a label stays known where the occlusion hides the AU (now 0) or misses it (as it was)
        return rows, images, None, drop, keep | drop, keep, np.zeros(len(rows), dtype=bool)


def build_grounding(cfg: GroundingConfig, dataset: FaceTorchDataset, data_root: str | None,
                    seed: int = 0) -> PairMaker | None:
    """Switch on ``cfg``'s options for the training ``dataset``: randomise its backgrounds (face masks
    from :func:`face_masks_for`) and return the :class:`PairMaker` of its batches (None: no pairs)."""
    if cfg.background > 0:
        face, known = face_masks_for(dataset.records, dataset.image_size, data_root)
        if not known.any():
            raise FacrError(data_root, "grounding.background needs to know where the face is: the synthetic "
                                       "benchmark, or 68 landmarks in the records' meta")
        dataset.randomise_background(face, cfg.background)
    scene = redraw_decorrelated(cfg.decorrelate, dataset, data_root, seed) if cfg.decorrelate > 0 else None
    return PairMaker(cfg, dataset, data_root, seed, scene=scene) if cfg.pairs else None


def _synth_scene(dataset: FaceTorchDataset, data_root: str | None, needs: str):
    """The benchmark's scene behind ``dataset`` (every record one of its rows), else one line: ``needs``."""
    from facr.audit.oracle import is_synth
    from facr.data.synth import read_scene

    if data_root is None or not is_synth(data_root) or not all("index" in (r.meta or {}) for r in dataset.records):
        raise FacrError(data_root, f"{needs} the synthetic benchmark (facr data synth); on other data use "
                                   "grounding.background and grounding.occlusion_pairs")
    return read_scene(data_root)


def redraw_decorrelated(share: float, dataset: FaceTorchDataset, data_root: str | None, seed: int = 0):
    """Redraw ``share`` of the training faces (``grounding.decorrelate``), once, before training: the
    same identity, pose, light, noise and background with AU intensities drawn independently of each
    other and of the emotion — AU k present at its training presence rate, at an intensity drawn from
    its present training cases. The redrawn faces train z (AU BCE, map loss) and the class terms skip
    them (:meth:`facr.data.torch_data.FaceTorchDataset.redraw`): whatever co-occurs with AU k no longer
    predicts it, so z_k has only AU k's own pixels to read. Which faces and AUs is a function of
    ``seed``, so a resumed run redraws the same. Returns the scene with those rows' intensities
    replaced (what the renderer pairs then draw from)."""
    from facr.audit.pixel import resize_mask
    from facr.data.synth import SYNTH_AUS, face_masks, render_intervention

    scene = _synth_scene(dataset, data_root, "grounding.decorrelate redraws faces and needs")
    missing = [a for a in dataset.aus if a not in SYNTH_AUS]
    if missing:
        raise FacrError(data_root, f"grounding.decorrelate: {', '.join(missing)} not drawn by the benchmark")
    rng = np.random.default_rng([seed, 0xDEC0])
    index = np.array([int(r.meta["index"]) for r in dataset.records], dtype=np.int64)
    own = scene.intensity[index]
    rows = np.sort(rng.permutation(len(index))[: int(round(share * len(index)))])
    if not len(rows):  # too few faces for that share: nothing to redraw
        return scene
    new = np.zeros((len(rows), own.shape[1]))
    for k in range(own.shape[1]):
        present = own[:, k][own[:, k] > 0]
        on = rng.random(len(rows)) < len(present) / len(index)
        if len(present):
            new[on, k] = rng.choice(present, int(on.sum()))
    sidx = index[rows]
    images, masks = render_intervention(scene, sidx, intensity=new, masks=True)
    records = [replace(dataset.records[i], image=images[j],
                       au_presence={a: int(new[j, k] > 0) for k, a in enumerate(SYNTH_AUS)},
                       au_intensity={a: float(new[j, k]) for k, a in enumerate(SYNTH_AUS)},
                       meta={**dataset.records[i].meta, "au_masks": np.packbits(masks[j], axis=0).tobytes(),
                             "mask_aus": list(SYNTH_AUS), "redrawn": True})
               for j, i in enumerate(rows.tolist())]
    face = None
    if dataset.face is not None:
        size = dataset.image_size
        face = np.stack([resize_mask(f, (size, size)) for f in face_masks(scene, sidx, intensity=new)])
    dataset.redraw(rows, records, face)
    drawn = scene.intensity.copy()
    drawn[sidx] = new
    return replace(scene, intensity=drawn)
