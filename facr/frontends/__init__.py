"""Front ends: where an AU latent z comes from when it is not a trained ResNet/ViT on pixels.

* :mod:`facr.frontends.mediapipe` — MediaPipe's FaceLandmarker (detector, 478 landmarks, 52
  blendshapes, head pose) on a real photo, mapped to the AUs the blendshapes can show;
* :mod:`facr.frontends.tables` — AU tables other tools write (OpenFace 2.2 / 3.0, py-feat, LibreFace).

Every front end gives :class:`FaceReading` objects: one per face, z over a fixed AU order, with the
AUs it cannot see marked *not coded* (exactly as a dataset that does not code them), never filled in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class FaceReading:
    """One face as a front end reads it.

    ``z[k]`` ∈ [0, 1] is the front end's evidence for ``aus[k]`` (0.5 is the verbalizer's and the
    audit's presence threshold); ``coded[k]`` is False where the front end cannot see AU k, and then
    ``z[k]`` is 0 and means nothing. ``box`` is (x0, y0, x1, y1) in pixels of the input image or None
    (tables), ``landmarks`` the face's points in pixels ([478, 3] from MediaPipe) or None. ``source``
    names the input (file, frame), ``face_id`` tracks a face across frames, ``extra`` holds what the
    front end saw raw (blendshape scores, head pose, the table's own columns)."""

    aus: list[str]
    z: np.ndarray
    coded: np.ndarray
    box: tuple[float, float, float, float] | None = None
    landmarks: np.ndarray | None = None
    source: str = ""
    frame: int | None = None
    face_id: int = 0
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        self.z = np.asarray(self.z, dtype=np.float32)
        self.coded = np.asarray(self.coded, dtype=bool)
        if self.z.shape != (len(self.aus),) or self.coded.shape != (len(self.aus),):
            raise ValueError(f"z and coded must have one value per AU ({len(self.aus)}), got {self.z.shape}, "
                             f"{self.coded.shape}")
        if not np.all(np.isfinite(self.z)) or self.z.min(initial=0.0) < 0 or self.z.max(initial=0.0) > 1:
            raise ValueError("z must be finite and in [0, 1]")

    @property
    def seen(self) -> list[str]:
        """The AUs the front end codes."""
        return [a for a, c in zip(self.aus, self.coded) if c]
