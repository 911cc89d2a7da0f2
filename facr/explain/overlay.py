"""Overlays: where each AU is seen on one face, for ``facr explain maps`` and the chat.

:func:`explain_face` reads a face (ŷ, z, every do(z_k = 0)), picks the AUs to show — by default
the AUs the model *invokes* for its prediction (the top-|Pa(ĉ)| by |Δ_kĉ|, as the audit defines
them) — and computes their maps; :func:`render` lays them out as one PNG: the face, then one
overlay per AU titled with z_k and Δ_kĉ.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch

from facr import au as au_vocab
from facr.au import ACTIVE
from facr.explain import maps as M


@dataclass
class FaceMaps:
    """One face's maps: ``pixels`` [S, S, 3]; ``heat`` {AU: [S, S] in [0, 1]}; the prediction and
    each shown AU's z and Δ on the predicted class."""

    pixels: np.ndarray
    method: str
    predicted: str
    probability: float
    aus: list[str]
    heat: dict[str, np.ndarray]
    z: dict[str, float]
    delta: dict[str, float]
    image: np.ndarray | None = None  # the rendered overlays, when asked for (the chat)

    def summary(self) -> dict:
        """JSON-able: the prediction and, per AU, z, Δ and where its map peaks (row, col as a fraction
        of the face, 0 = top / left)."""
        out = {"method": self.method, "predicted": self.predicted, "probability": self.probability, "aus": {}}
        for a in self.aus:
            h = self.heat[a]
            r, c = np.unravel_index(int(np.argmax(h)), h.shape)
            out["aus"][a] = {"name": au_vocab.info(a).name, "z": self.z[a], "delta": self.delta[a],
                             "peak": [round(r / h.shape[0], 3), round(c / h.shape[1], 3)]}
        return out


def explain_face(model, graph, pixels: np.ndarray, method: str | None = None,
                 aus: list[str] | None = None) -> FaceMaps:
    """Maps of ``aus`` (default: the invoked AUs of the predicted class under ``graph``) on one
    uint8 ``[S, S, 3]`` face."""
    from facr.audit.metrics import invoked_aus
    from facr.causal import graph_signs
    from facr.errors import FacrError
    from facr.explain.audit import primary_method

    method = method or primary_method(model)
    cfg = model.config
    x = torch.from_numpy(np.array(pixels, dtype=np.uint8, copy=True))[None]
    with torch.no_grad():
        out = model(x.to(next(model.parameters()).device), effects="batched")
    probs = torch.softmax(out.logits[0].float(), dim=-1).cpu()
    c = int(probs.argmax())
    if aus is None:
        signs = graph_signs(graph, list(cfg.aus), list(cfg.classes))
        aus = [cfg.aus[k] for k in invoked_aus(out.effects, signs.to(out.logits.device))[0]]
        if not aus:  # a class without parents (neutral): show the AUs the face shows
            aus = [a for a, v in zip(cfg.aus, out.z[0].tolist()) if v >= ACTIVE]
    else:
        aus = [au_vocab.canonical(a) for a in aus]
        unknown = [a for a in aus if a not in cfg.aus]
        if unknown:
            raise FacrError(None, f"{unknown[0]} is not in this model's latent ({', '.join(cfg.aus)})")
    maps = M.au_maps(model, x, method)
    heat = M.to_image(maps.maps, pixels.shape[0])[0]
    delta = out.effects.delta[0, :, c].cpu()
    idx = {a: cfg.aus.index(a) for a in aus}
    return FaceMaps(np.asarray(pixels), method, cfg.classes[c], float(probs[c]), list(aus),
                    {a: heat[k] for a, k in idx.items()}, {a: float(out.z[0, k]) for a, k in idx.items()},
                    {a: float(delta[k]) for a, k in idx.items()})


def blend(pixels: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The face with ``heat`` ([S, S] in [0, 1]) laid over it in the ``inferno`` colour map: uint8."""
    from matplotlib import colormaps

    colour = colormaps["inferno"](heat)[..., :3]
    out = (1 - alpha) * pixels.astype(np.float32) / 255.0 + alpha * colour
    return (np.clip(out, 0, 1) * 255).astype(np.uint8)


def render(fm: FaceMaps, columns: int = 4, scale: float = 2.0) -> bytes:
    """PNG bytes: the face, then one overlay per AU (titled AU, FACS name, z, Δ on the predicted class)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    panels = [("face: " + f"{fm.predicted} {fm.probability:.2f}", fm.pixels)]
    for a in fm.aus:
        panels.append((f"{a} {_short(a)}\nz={fm.z[a]:.2f}  Δ={fm.delta[a]:+.2f}", blend(fm.pixels, fm.heat[a])))
    cols = min(columns, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(scale * cols, scale * rows + 0.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (title, img) in zip(axes.ravel(), panels):
        ax.imshow(img)
        ax.set_title(title, fontsize=7)
    fig.suptitle(f"where each AU is seen ({fm.method})", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def _short(au: str) -> str:
    return au_vocab.info(au).name.lower()
