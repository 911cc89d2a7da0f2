"""Russell's circumplex as a ground cost: price expression confusions by valence–arousal distance.

Each emotion class sits at (valence, arousal) = (cos θ, sin θ) on the unit circle, θ the angle of its
affect word in J. A. Russell (1980), "A circumplex model of affect", J. Pers. Soc. Psychol. 39(6),
1161–1178 (degrees counter-clockwise from the pleasure axis, as commonly reproduced from the paper's
figure). ``neutral`` has no word: it is the circumplex's centre (0, 0), one unit from every emotion.

:func:`cost_matrix` turns the classes into a ground cost M (``"circumplex"``, or the ``"uniform"``
control), :func:`ot_loss` is the optimal-transport term W_M(softmax(logits), δ_y), and
:func:`affective_distance` measures how far, on the circumplex, a model's errors land from the truth.

>>> M = cost_matrix(["happiness", "sadness", "anger"])
>>> float(M[0, 1]) == 1.0 and float(M[1, 0]) == 1.0
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

# class -> (Russell's affect word, angle in degrees). Provenance lives here; COORDINATES is derived.
ANGLES: dict[str, tuple[str, float]] = {
    "happiness": ("happy", 7.8),
    "surprise": ("astonished", 69.8),
    "anger": ("angry", 99.0),
    "fear": ("afraid", 116.0),
    "sadness": ("sad", 207.5),
    # Not Russell's: disgust and contempt are not among his 28 words. These are facr's proxies.
    # Both are unpleasant *and activated* (with anger they form the hostility triad of Rozin et al.,
    # 1999, "The CAD triad hypothesis"), so their proxies are words of the unpleasant–aroused quadrant:
    #   disgust  <- "distressed": unpleasant, less aroused than angry/afraid, as disgust is rated;
    #   contempt <- "annoyed": the cool, low-intensity form of hostility next to "angry".
    # "bored" (241°) was rejected for contempt: it is deactivated, would seat contempt beside sadness
    # and far from anger, the opposite of the anger–contempt proximity the CAD triad describes.
    "disgust": ("distressed", 138.0),
    "contempt": ("annoyed", 123.0),
}

#: The classes whose place is facr's proxy, not one of Russell's words.
PROXIES: frozenset[str] = frozenset({"disgust", "contempt"})

#: class -> (valence, arousal); the emotions on the unit circle, ``neutral`` at the centre.
COORDINATES: dict[str, tuple[float, float]] = {
    "neutral": (0.0, 0.0),
    **{c: (math.cos(math.radians(deg)), math.sin(math.radians(deg))) for c, (_, deg) in ANGLES.items()},
}

COST_KINDS = ("circumplex", "uniform")


def _positions(classes: Sequence[str]) -> np.ndarray:
    """[C, 2] (valence, arousal) of ``classes``; ``ValueError`` naming a class with no circumplex place."""
    classes = list(classes)
    if not classes:
        raise ValueError("classes must name at least one emotion")
    if len(set(classes)) != len(classes):
        dup = sorted({c for c in classes if classes.count(c) > 1})
        raise ValueError(f"classes repeat {', '.join(map(repr, dup))}")
    unknown = [c for c in classes if c not in COORDINATES]
    if unknown:
        raise ValueError(f"no circumplex place for class {', '.join(map(repr, unknown))} "
                         f"(known: {', '.join(COORDINATES)})")
    return np.array([COORDINATES[c] for c in classes], dtype=np.float64)


def va_distance(classes: Sequence[str]) -> np.ndarray:
    """[C, C] float64 Euclidean valence–arousal distance d(i, j), unnormalised (at most 2)."""
    pos = _positions(classes)
    return np.linalg.norm(pos[:, None, :] - pos[None, :, :], axis=-1)


def cost_matrix(classes: Sequence[str], kind: str = "circumplex") -> np.ndarray:
    """The ground cost M [C, C] (float32) between ``classes``, in the order given.

    ``"circumplex"``: M_ij = d(i, j) / max d, the valence–arousal distance scaled into [0, 1].
    ``"uniform"``: M_ij = 1 for i ≠ j, 0 on the diagonal — the control, which prices every
    confusion alike (see :func:`ot_loss`). Both kinds require every class to have a circumplex
    place, so a control never runs on a task the circumplex cost could not.

    Raises ``ValueError`` for an unknown ``kind`` or a class with no place on the circumplex
    (e.g. a pain task's ``no_pain``/``pain``), naming it and the known classes.
    """
    if kind not in COST_KINDS:
        raise ValueError(f"kind must be one of {', '.join(COST_KINDS)}, got {kind!r}")
    d = va_distance(classes)
    if kind == "uniform":
        return (1.0 - np.eye(len(d))).astype(np.float32)
    top = d.max()
    # One class (or only coincident ones) has no confusion to price.
    return (d / top if top > 0 else d).astype(np.float32)


def ot_loss(logits: torch.Tensor, target: torch.Tensor, cost: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Batch mean of the OT distance W_M(p, δ_y) between p = softmax(logits) and the label's point mass.

    Moving the mass p onto the single point y admits exactly one transport plan (all of p_j goes
    from j to y), so the optimal-transport distance under ground cost M is exact in closed form,

        W_M(p, δ_y) = Σ_j p_j · M[y, j],

    with no Sinkhorn iterations or entropic bias. Under the uniform cost (M = 1 − I) it is
    Σ_{j≠y} p_j = 1 − p_y: a generic confidence penalty, the control that tells a geometric gain
    from a confidence one. Its gradient, ∂W/∂z_k = p_k (M[y, k] − W), pushes a logit down in
    proportion to how far its class lies from y.

    ``logits`` [B, C] of any float dtype, ``target`` [B] class indices, ``cost`` [C, C] (numpy or
    tensor; moved to the logits' device). Half-precision logits are computed and returned in
    float32; float32/float64 in their own dtype.
    """
    if logits.dim() != 2:
        raise ValueError(f"logits must be [batch, classes], got shape {tuple(logits.shape)}")
    if target.shape != logits.shape[:1]:
        raise ValueError(f"target must be [batch]={logits.shape[0]}, got shape {tuple(target.shape)}")
    dtype = torch.promote_types(logits.dtype, torch.float32)
    cost = torch.as_tensor(cost).to(device=logits.device, dtype=dtype)
    n = logits.shape[1]
    if cost.shape != (n, n):
        raise ValueError(f"cost must be [{n}, {n}] for {n} classes, got shape {tuple(cost.shape)}")
    p = torch.softmax(logits.to(dtype), dim=-1)
    return (p * cost[target.long()]).sum(dim=-1).mean()


def _indices(values: Sequence, classes: Sequence[str], what: str) -> np.ndarray:
    """Class indices from indices or class names."""
    values = list(values.tolist() if hasattr(values, "tolist") else values)
    index = {c: i for i, c in enumerate(classes)}
    out = []
    for v in values:
        if isinstance(v, str):
            if v not in index:
                raise ValueError(f"{what}: {v!r} is not one of the classes ({', '.join(classes)})")
            out.append(index[v])
        else:
            i = int(v)
            if not 0 <= i < len(classes):
                raise ValueError(f"{what}: index {i} is outside 0-{len(classes) - 1}")
            out.append(i)
    return np.asarray(out, dtype=np.int64)


def affective_distance(labels: Sequence, predicted: Sequence, classes: Sequence[str]) -> dict:
    """How far, in valence–arousal, the errors land from the truth, beside what chance would give.

    With d(i, j) the unnormalised circumplex distance (:func:`va_distance`) and E the misclassified
    samples (ŷ ≠ y):

    - ``error_distance`` = mean_{E} d(y, ŷ) — ``None`` when there are no errors;
    - ``chance_error_distance`` = mean_{E} mean_{j≠y} d(y, j): the same errors, on the same true
      labels, spread uniformly over the other classes — ``None`` when there are no errors;
    - ``n_errors`` = |E|, ``n_samples`` = the number of samples.

    A model whose errors are affectively nearer the truth has ``error_distance`` below the chance
    value. ``labels`` and ``predicted`` are class indices or names; values are plain Python numbers
    (JSON-able).
    """
    classes = list(classes)
    d = va_distance(classes)
    y = _indices(labels, classes, "labels")
    y_hat = _indices(predicted, classes, "predicted")
    if len(y) != len(y_hat):
        raise ValueError(f"labels ({len(y)}) and predicted ({len(y_hat)}) differ in length")
    wrong = y != y_hat
    n_errors = int(wrong.sum())
    result = {"n_samples": len(y), "n_errors": n_errors, "error_distance": None, "chance_error_distance": None}
    if n_errors:
        # Row mean over j ≠ y: the diagonal is zero, so divide the row sum by C − 1.
        chance_per_class = d.sum(axis=1) / (len(classes) - 1)
        result["error_distance"] = float(d[y[wrong], y_hat[wrong]].mean())
        result["chance_error_distance"] = float(chance_per_class[y[wrong]].mean())
    return result
