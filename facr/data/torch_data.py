"""FaceRecords as a torch ``Dataset``: pixels, class label, AU targets and the coded-AU mask.

Images are decoded lazily (paths) or taken as they are (arrays), resized to ``image_size``,
scaled to [0, 1] and normalised with ImageNet statistics (what pretrained ResNets/ViTs expect).
Augmentation (horizontal flip, small shift) draws from a generator seeded by (seed, epoch,
index), so an epoch's batches are the same however the loop is interrupted and resumed and
however many DataLoader workers decode them.
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
    """``HxWx3`` uint8 at ``size``×``size`` from an array, a PIL image or a path."""
    from PIL import Image

    if isinstance(image, np.ndarray):
        arr = image
        if arr.shape[0] != size or arr.shape[1] != size:
            arr = np.asarray(Image.fromarray(arr).resize((size, size), Image.BILINEAR))
        return arr
    img = image if isinstance(image, Image.Image) else Image.open(image)
    img = img.convert("RGB")
    if img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR)
    return np.asarray(img)


class FaceTorchDataset(Dataset):
    """Records with a label for ``task`` as training items (dicts of tensors)."""

    def __init__(self, records: Sequence[FaceRecord], aus: Sequence[str], task: Task, image_size: int = 112,
                 augment: bool = False, seed: int = 0):
        self.records = [r for r in records if task.label(r) is not None]
        self.aus = list(aus)
        self.task = task
        self.image_size = image_size
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self.labels = np.array([task.label(r) for r in self.records], dtype=np.int64)
        K = len(self.aus)
        self.au_targets = np.zeros((len(self.records), K), dtype=np.float32)
        self.au_mask = np.zeros((len(self.records), K), dtype=np.float32)
        for i, r in enumerate(self.records):
            for k, a in enumerate(self.aus):
                v = r.au_presence.get(a)
                if v is not None:
                    self.au_targets[i, k] = v
                    self.au_mask[i, k] = 1.0

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def pixels(self, i: int) -> np.ndarray:
        """Image ``i`` as float32 ``[3, H, W]``, normalised (augmented when enabled)."""
        arr = load_image(self.records[i].image, self.image_size)
        if self.augment:
            rng = np.random.default_rng((self.seed, self.epoch, i))
            if rng.random() < 0.5:
                arr = arr[:, ::-1]
            shift = max(1, self.image_size // 28)
            dy, dx = rng.integers(-shift, shift + 1, size=2)
            arr = np.roll(arr, (int(dy), int(dx)), axis=(0, 1))
        x = (arr.astype(np.float32) / 255.0 - MEAN) / STD
        return np.ascontiguousarray(x.transpose(2, 0, 1))

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {
            "pixel_values": torch.from_numpy(self.pixels(i)),
            "labels": torch.tensor(self.labels[i]),
            "au_targets": torch.from_numpy(self.au_targets[i]),
            "au_mask": torch.from_numpy(self.au_mask[i]),
            "index": torch.tensor(i),
        }

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=len(self.task.classes))


def inverse_frequency_weights(counts: np.ndarray) -> torch.Tensor:
    """Class weights ∝ 1/frequency, normalised to mean 1 (classes absent from training get 0)."""
    counts = np.asarray(counts, dtype=np.float64)
    w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / max((counts > 0).sum(), 1), 0.0)
    return torch.tensor(w, dtype=torch.float32)
