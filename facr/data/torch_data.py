"""FaceRecords as a torch ``Dataset``: pixels, class label, AU targets and the coded-AU mask.

Batches are fetched whole (``__getitems__``): images held in memory (the synth benchmark) are
stacked once into one uint8 tensor and gathered per batch, paths are decoded and resized. Images
leave as uint8 ``[B, H, W, 3]``; the model normalises the batch with ImageNet statistics (what
pretrained ResNets/ViTs expect), 4x fewer bytes through the loader than float pixels.
Augmentation (horizontal flip, small circular shift, and, when a run asks for it, the pixels
outside the face replaced by a random colour: :meth:`FaceTorchDataset.randomise_background`) is a
hash of (seed, epoch, index), applied to the batch in one gather, so an epoch's batches are the same
however the loop is interrupted and resumed and however many DataLoader workers fetch them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from facr.data.records import FaceRecord

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


@dataclass
class Task:
    """What the head predicts: the class order and how a record's label is read.

    ``kind='emotion'``: the record's emotion. ``kind='pain'``: PSPI > 0 (the UNBC protocol),
    classes ``["no_pain", "pain"]``.
    """

    kind: str
    classes: list[str]

    def label(self, record: FaceRecord) -> int | None:
        if self.kind == "pain":
            return record.pain
        if record.emotion is None or record.emotion not in self.classes:
            return None
        return self.classes.index(record.emotion)


def load_image(image, size: int) -> np.ndarray:
    """``HxWx3`` uint8 at ``size``×``size`` from an array, a PIL image or a path (decoded bounded,
    :func:`facr.data.images.open_image`: a file that does not decode is an ``ImageReadError``
    naming it; runs drop those up front, :func:`facr.data.images.drop_unusable`)."""
    from PIL import Image

    from facr.data.images import open_image

    if isinstance(image, np.ndarray):
        arr = image
        if arr.shape[0] != size or arr.shape[1] != size:
            arr = np.asarray(Image.fromarray(arr).resize((size, size), Image.BILINEAR))
        return arr
    img = image.convert("RGB") if isinstance(image, Image.Image) else open_image(image)
    if img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR)
    return np.asarray(img)


def _mix64(x):
    """splitmix64's finaliser on uint64 numpy values: a cheap, well-mixed hash."""
    with np.errstate(over="ignore"):
        x = np.asarray(x, dtype=np.uint64)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def collate_batch(batch):
    """``collate_fn`` for a :class:`FaceTorchDataset` loader: its ``__getitems__`` already returns the
    batch as a dict of tensors."""
    return batch


def make_loader(dataset: "FaceTorchDataset", batch_size: int, *, shuffle: bool = False, num_workers: int = 0,
                drop_last: bool = False, generator: torch.Generator | None = None):
    """A ``DataLoader`` that fetches whole batches through ``__getitems__``."""
    from torch.utils.data import DataLoader

    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers, drop_last=drop_last,
                      collate_fn=collate_batch, persistent_workers=num_workers > 0, generator=generator)


def _flip_shift(x: np.ndarray, flip: np.ndarray, dy: np.ndarray, dx: np.ndarray,
                axes: tuple[int, int] = (-2, -1)) -> np.ndarray:
    """Each ``x[i]`` mirrored left-right where ``flip[i]``, then shifted circularly by ``(dy[i], dx[i])``,
    its rows and columns on ``axes``: the augmentation of an image (``[H, W, 3]``, axes (0, 1)) and of
    what follows it (a face mask, a stack of AU regions: ``[..., H, W]``). One item at a time: about 2x
    faster than one gather over the batch for images, 2.5–4x for masks."""
    return np.stack([np.roll(np.flip(m, axes[1]) if f else m, (int(y), int(x_)), axis=axes)
                     for m, f, y, x_ in zip(x, flip, dy, dx)])


class FaceTorchDataset(Dataset):
    """Records with a label for ``task`` as training items (dicts of tensors)."""

    def __init__(self, records: Sequence[FaceRecord], aus: Sequence[str], task: Task, image_size: int = 112,
                 augment: bool = False, seed: int = 0, rois: bool = False):
        """``rois``: also serve each AU's ground-truth region (``roi`` [B, K, S/4, S/4], ``roi_mask``
        [B, K]; :mod:`facr.explain.truth`), augmented with the image — what AGCM's map loss needs."""
        self.records = [r for r in records if task.label(r) is not None]
        self.aus = list(aus)
        self.task = task
        self.image_size = image_size
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self.labels = np.array([task.label(r) for r in self.records], dtype=np.int64)
        self.au_targets, self.au_mask, raw = self._au_labels(self.records)
        self.intensity_floor, self.graded = _intensity_scale(self.au_targets, raw)
        self.au_intensity = self._levels(self.au_targets, raw)
        self.roi = self.roi_mask = None
        if rois:
            self.roi, self.roi_mask = self._regions(self.records)

        self._in_memory = all(isinstance(r.image, np.ndarray) for r in self.records)
        self._bank: torch.Tensor | None = None
        self.face: np.ndarray | None = None  # bool [N, S, S], True inside the face (randomise_background)
        self.background = 0.0
        self.class_rows: np.ndarray | None = None  # bool [N]: the rows the class terms score (None: all; redraw)

    def randomise_background(self, face: np.ndarray, share: float) -> None:
        """From now on, in ``share`` of the images (chosen by the augmentation hash), replace every
        pixel outside the face (``face``: bool ``[N, S, S]``, True inside, one per record; a record
        with no known face is all True) by one random colour with pixel noise: whatever the
        background carries (a planted hue, a studio) cannot then tell the class."""
        face = np.asarray(face, dtype=bool)
        if face.shape != (len(self.records), self.image_size, self.image_size):
            raise ValueError(f"face: expected [{len(self.records)}, {self.image_size}, {self.image_size}], "
                             f"got {list(face.shape)}")
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"share must be in [0, 1], got {share}")
        self.face, self.background = face, float(share)

    def _au_labels(self, records: Sequence[FaceRecord]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(targets, coded mask, intensities) float32 ``[n, K]`` of ``records``' AUs: presence, whether
        it is coded, and the intensity where both presence and intensity are coded, else NaN."""
        targets = np.zeros((len(records), len(self.aus)), dtype=np.float32)
        mask = np.zeros_like(targets)
        raw = np.full_like(targets, np.nan)
        for i, r in enumerate(records):
            for k, a in enumerate(self.aus):
                v = r.au_presence.get(a)
                if v is not None:
                    targets[i, k], mask[i, k] = v, 1.0
                    level = r.au_intensity.get(a)
                    if level is not None:
                        raw[i, k] = level
        return targets, mask, raw

    def _levels(self, targets: np.ndarray, raw: np.ndarray) -> np.ndarray:
        """The ordinal levels ``loss.au_intensity`` reads, float32 ``[n, K]``: for a ``graded`` AU with a
        coded intensity, 0 where absent and the intensity counted from ``intensity_floor`` where present
        (level 1 is the weakest present one); NaN elsewhere."""
        counted = np.where(targets > 0, np.maximum(raw - self.intensity_floor + 1, 0.0), 0.0)
        return np.where(~np.isnan(raw) & self.graded, counted, np.nan).astype(np.float32)

    def _regions(self, records: Sequence[FaceRecord]) -> tuple[np.ndarray, np.ndarray]:
        """(regions bool ``[n, K, S/4, S/4]``, defined float32 ``[n, K]``) of ``records``."""
        from facr.explain.truth import region_masks

        pairs = [region_masks(r, self.aus, self.image_size) for r in records]
        if not pairs:
            m = self.image_size // 4
            return np.zeros((0, len(self.aus), m, m), dtype=bool), np.zeros((0, len(self.aus)), np.float32)
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]).astype(np.float32)

    def redraw(self, rows, records: Sequence[FaceRecord], face: np.ndarray | None = None) -> None:
        """Replace faces ``rows`` by ``records``, other drawings of them that train z only
        (``grounding.decorrelate``): their AU labels and regions are read from the records as at
        construction, and ``face`` (bool ``[n, S, S]``) are their face masks, needed when backgrounds are
        randomised. From now on batches carry ``class_rows``, False on these rows: the class terms skip
        them."""
        rows, records = np.asarray(rows, dtype=np.int64), list(records)
        if len(records) != len(rows):
            raise ValueError(f"redraw: {len(rows)} rows but {len(records)} records")
        if self.face is not None and face is None:
            raise ValueError("redraw: the dataset randomises backgrounds: give the new rows' face masks too")
        for i, r in zip(rows.tolist(), records):
            self.records[i] = r
        targets, mask, raw = self._au_labels(records)
        self.au_targets[rows], self.au_mask[rows], self.au_intensity[rows] = targets, mask, self._levels(targets, raw)
        if self.roi is not None:
            self.roi[rows], self.roi_mask[rows] = self._regions(records)
        if self.face is not None:
            self.face[rows] = face
        self._bank = None  # gathered again from the records
        if self.class_rows is None:
            self.class_rows = np.ones(len(self.records), dtype=bool)
        self.class_rows[rows] = False

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    # ---------------------------------------------------------------- images
    def _raw(self, i: int) -> np.ndarray:
        return load_image(self.records[i].image, self.image_size)

    def _stack(self, indices: np.ndarray) -> torch.Tensor:
        """uint8 ``[B, H, W, 3]`` of ``indices`` before augmentation. Records that already hold arrays
        (the synth benchmark) are stacked once into one tensor and gathered from; paths are decoded."""
        if self._bank is None and self._in_memory:
            self._bank = torch.from_numpy(np.stack([self._raw(i) for i in range(len(self.records))])) \
                if self.records else torch.empty((0, self.image_size, self.image_size, 3), dtype=torch.uint8)
        if self._bank is not None:
            return self._bank[torch.as_tensor(indices, dtype=torch.long)]
        return torch.from_numpy(np.stack([self._raw(int(i)) for i in indices]))

    def raw_images(self, indices) -> torch.Tensor:
        """uint8 ``[B, H, W, 3]`` of ``indices`` at ``image_size``, not augmented."""
        return self._stack(np.asarray(indices, dtype=np.int64))

    def augmentation(self, indices) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(flip, dy, dx) per index for this epoch: a function of (seed, epoch, index) only, so batches
        are the same however the loop is interrupted, resumed or split over workers."""
        idx = np.asarray(indices, dtype=np.uint64)
        with np.errstate(over="ignore"):  # uint64 arithmetic wraps on purpose (a hash, as in _mix64)
            h = _mix64(_mix64(np.uint64(self.seed) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(self.epoch)) + idx)
        shift = max(1, self.image_size // 28)
        flip = (h & np.uint64(1)).astype(bool)
        dy = ((h >> np.uint64(8)) % np.uint64(2 * shift + 1)).astype(np.int64) - shift
        dx = ((h >> np.uint64(24)) % np.uint64(2 * shift + 1)).astype(np.int64) - shift
        return flip, dy, dx

    def images(self, indices) -> torch.Tensor:
        """uint8 ``[B, H, W, 3]`` for ``indices`` (augmented when enabled: horizontal flip, a small
        circular shift), gathered in one indexing op for the whole batch."""
        indices = np.asarray(indices, dtype=np.int64)
        return self.augment_images(self._stack(indices), indices,
                                   None if self.face is None else self.face[indices])

    def augment_images(self, x: torch.Tensor, indices, face: np.ndarray | None = None) -> torch.Tensor:
        """``x`` (uint8 ``[B, H, W, 3]``) augmented as images ``indices`` are this epoch — the same flip,
        shift and background colour — so that a re-rendered or occluded copy of an image differs from
        it only by its intervention. ``face`` (bool ``[B, H, W]``) is where its face is (see
        :meth:`randomise_background`; None: no background randomisation)."""
        indices = np.asarray(indices, dtype=np.int64)
        if len(indices) == 0:
            return x.contiguous()
        f = None if face is None or self.background == 0 else np.asarray(face, dtype=bool)
        if self.augment:
            flip, dy, dx = self.augmentation(indices)
            x = torch.from_numpy(_flip_shift(x.numpy(), flip, dy, dx, axes=(0, 1)))
            if f is not None:
                f = _flip_shift(f, flip, dy, dx)
        if f is None:
            return x.contiguous()
        return self._replace_background(x, torch.from_numpy(np.ascontiguousarray(f)), indices)

    def _replace_background(self, x: torch.Tensor, face: torch.Tensor, indices: np.ndarray) -> torch.Tensor:
        """Pixels outside ``face`` set to a random colour (uniform RGB) plus noise of s.d.
        ``BACKGROUND_NOISE`` grey levels, in the images the hash picks (``background`` of them)."""
        with np.errstate(over="ignore"):  # a second hash of (seed, epoch, index), apart from the flip/shift one
            h = _mix64(_mix64(np.uint64(self.seed) * np.uint64(0xD1B54A32D192ED03) + np.uint64(self.epoch))
                       + indices.astype(np.uint64))
        on = ((h & np.uint64(0xFFFF)).astype(np.float64) / 65536.0) < self.background
        colour = np.stack([(h >> np.uint64(s)) & np.uint64(0xFF) for s in (16, 24, 32)], 1)
        S = x.shape[1]
        oy = ((h >> np.uint64(40)) % np.uint64(S)).astype(np.int64)
        ox = ((h >> np.uint64(52)) % np.uint64(S)).astype(np.int64)
        field_ = _background_noise(S)  # int16 in numpy: ~10x faster here than float tensors
        noise = np.stack([field_[y:y + S, x_:x_ + S] for y, x_ in zip(oy.tolist(), ox.tolist())])
        fill = torch.from_numpy(noise).add_(torch.from_numpy(colour.astype(np.int16))[:, None, None, :])
        fill = fill.clamp_(0, 255).to(torch.uint8)  # in place in torch: ~25 % faster than numpy's clip here
        keep = (face[..., None] | ~torch.from_numpy(on)[:, None, None, None]).to(torch.uint8)
        # torch.where(keep, x, fill) as uint8 arithmetic (keep is 0 or 1, so nothing overflows): the same
        # bytes, 2-3x faster here than where's broadcast over the channels
        return fill.mul_(1 - keep).add_(x * keep)

    def image(self, i: int) -> np.ndarray:
        """Image ``i`` as uint8 ``[H, W, 3]`` at ``image_size`` (augmented when enabled)."""
        return self.images([i])[0].numpy()

    def pixels(self, i: int) -> np.ndarray:
        """Image ``i`` as float32 ``[3, H, W]``, normalised (augmented when enabled)."""
        x = (self.image(i).astype(np.float32) / 255.0 - MEAN) / STD
        return np.ascontiguousarray(x.transpose(2, 0, 1))

    # ---------------------------------------------------------------- items
    def __getitems__(self, indices) -> dict[str, torch.Tensor]:
        """A whole batch at once (the DataLoader calls this with a batch of indices; use
        :func:`collate_batch` as its ``collate_fn``). Images are uint8 ``[B, H, W, 3]``: the model
        normalises the batch (``facr.models.reasoner.normalize_images``)."""
        idx = np.asarray(indices, dtype=np.int64)
        t = torch.as_tensor(idx)
        out = {
            "pixel_values": self.images(idx),
            "labels": torch.from_numpy(self.labels[idx]),
            "au_targets": torch.from_numpy(self.au_targets[idx]),
            "au_mask": torch.from_numpy(self.au_mask[idx]),
            "au_intensity": torch.from_numpy(self.au_intensity[idx]),
            "index": t,
        }
        if self.roi is not None:
            out["roi"] = self.rois(idx)
            out["roi_mask"] = torch.from_numpy(self.roi_mask[idx])
        if self.class_rows is not None:
            out["class_rows"] = torch.from_numpy(self.class_rows[idx])
        return out

    def rois(self, indices) -> torch.Tensor:
        """bool ``[B, K, S/4, S/4]`` regions of ``indices``, flipped and shifted with their images
        (the shift rounded to whole mask cells of 4 pixels)."""
        x = self.roi[np.asarray(indices, dtype=np.int64)]
        if not self.augment or len(indices) == 0:
            return torch.from_numpy(x)
        flip, dy, dx = self.augmentation(indices)
        cy, cx = np.rint(dy / 4).astype(np.int64), np.rint(dx / 4).astype(np.int64)
        return torch.from_numpy(_flip_shift(x, flip, cy, cx))

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.__getitems__([i]).items()}

    def class_counts(self) -> np.ndarray:
        """Training faces per class (the rows the class terms score)."""
        labels = self.labels if self.class_rows is None else self.labels[self.class_rows]
        return np.bincount(labels, minlength=len(self.task.classes))


BACKGROUND_NOISE = 6.0
_NOISE: dict[int, np.ndarray] = {}


def _intensity_scale(targets: np.ndarray, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per AU (columns of presence ``targets`` and intensities ``raw``, NaN = not coded), the weakest
    intensity coded present (1 where none is: 1 on most datasets, 2 on DISFA, which counts an AU
    present from intensity B), and whether it is coded present at more than one intensity (False for
    a binary AU such as AU43, eyes closed, coded 0/1: it has no intensity to order)."""
    present = (targets == 1) & (raw > 0)  # NaN compares False
    seen = [np.unique(raw[present[:, k], k]) for k in range(raw.shape[1])]
    floor = np.array([s[0] if len(s) else 1.0 for s in seen], dtype=np.float32)
    return floor, np.array([len(s) > 1 for s in seen], dtype=bool)


def _background_noise(size: int) -> np.ndarray:
    # One fixed field per size, read through a hashed window (as the benchmark draws its own noise):
    # as good as fresh noise for this, and far cheaper than drawing B·S·S·3 normals per batch.
    if size not in _NOISE:
        rng = np.random.default_rng(20250121)
        _NOISE[size] = np.rint(BACKGROUND_NOISE * rng.standard_normal((2 * size, 2 * size, 3))).astype(np.int16)
    return _NOISE[size]


def inverse_frequency_weights(counts: np.ndarray) -> torch.Tensor:
    """Class weights ∝ 1/frequency, normalised to mean 1 (classes absent from training get 0)."""
    counts = np.asarray(counts, dtype=np.float64)
    w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / max((counts > 0).sum(), 1), 0.0)
    return torch.tensor(w, dtype=torch.float32)
