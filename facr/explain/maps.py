"""Where each AU is seen: one region map per AU unit z_k of a trained reasoner.

The concept score of AU k is its latent logit s_k = f_k(x) (z_k = σ(s_k); the logit, not z_k,
so a saturated unit still has a gradient). Methods (``METHODS``):

- ``gradcam`` — Grad-CAM (Selvaraju et al., 2017) of s_k on the last layer (ResNet: last stage;
  ViT: the last block's patch tokens): ReLU(Σ_c α_c A_c), α_c the spatial mean of ∂s_k/∂A_c.
- ``cefam`` — CE-FAM's concept region (``../shared/papers/ce-fam-*.txt`` §3.3): the same
  gradient-weighted fusion R^l = ReLU(Σ_c β_c A^l_c) on **every** layer l, and per (image, AU)
  the layer with the highest *association score*: mask the top-20 channels by β_c z^l_c one by one
  (each replaced by the layer's mean activation m^l), the score is the area under the curve of the
  fall of s_k. facr's concept score is the supervised AU logit, so CE-FAM's VLM translator is not
  needed (its "annotated dataset" case).
- ``rollout`` — ViT only: gradient-weighted attention rollout (Chefer et al., CVPR 2021,
  "Transformer Interpretability Beyond Attention Visualization" / ICCV 2021 "Generic
  Attention-model Explainability"): R ← R + mean_heads((∂s_k/∂A ⊙ A)⁺) R from the identity, the
  CLS row over the patches.
- ``agcm`` — ``head: agcm`` only: the head's own spatial concept attention â_k.
- ``attention`` — ``au_readout: attention`` only: the AU readout's own attention â_k, the map z_k
  is read through (:mod:`facr.models.readout`).
- ``random`` — i.i.d. uniform maps (seeded): the baseline every figure is read against.

:func:`au_maps` returns maps on each method's native grid (non-negative); :func:`upsample` brings
them to the image for overlays, and :func:`facr.explain.regions.fit_map` to a mask for scoring.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from facr.errors import FacrError
from facr.registry import Registry

TOP_CHANNELS = 20  # CE-FAM's K: only the most important channels enter the masking curve


@dataclass
class AUMaps:
    """Region maps of a batch: ``maps`` [B, K, h, w] (≥ 0) for the model's AUs, the ``method``,
    and for ``cefam`` the chosen ``layer`` [B, K], every layer's ``association`` [B, K, L] and the
    AU → class ``contribution`` [B, K, C] at the chosen layer (:func:`contributions`)."""

    maps: torch.Tensor
    method: str
    aus: list[str]
    layer: torch.Tensor | None = None
    association: torch.Tensor | None = None
    contribution: torch.Tensor | None = None


@dataclass(frozen=True)
class MapMethod:
    """A region-map method: ``compute(model, x, seed)`` → maps [B, K, h, w] (or a whole
    :class:`AUMaps`, for CE-FAM's layers and contributions), and ``requires(model)``: why it cannot run
    on ``model`` (None when it can)."""

    name: str
    compute: Callable[..., Any]
    requires: Callable[[Any], str | None] = lambda model: None


# The map methods, in the order reports list them (registered below, where each is defined).
MAP_METHODS: Registry[MapMethod] = Registry("map method")


def available(model, method: str) -> str | None:
    """Why ``method`` cannot run on ``model`` (None when it can)."""
    if method not in MAP_METHODS:
        return f"unknown map method {method!r} (choose from {', '.join(METHODS)})"
    return MAP_METHODS[method].requires(model)


def methods_for(model) -> list[str]:
    """The map methods that apply to ``model``, in ``METHODS`` order."""
    return [m for m in METHODS if available(model, m) is None]


def au_maps(model, pixel_values: torch.Tensor, method: str = "gradcam", *, seed: int = 0) -> AUMaps:
    """One region map per AU for each image of a batch (uint8 [B, H, W, 3] or normalised pixels)."""
    problem = available(model, method)
    if problem:
        raise FacrError(None, problem)
    model.eval()
    x = model._pixels(pixel_values.to(next(model.parameters()).device))
    out = MAP_METHODS[method].compute(model, x, seed)
    return out if isinstance(out, AUMaps) else AUMaps(out, method, list(model.config.aus))


def _random(model, x: torch.Tensor, seed: int) -> torch.Tensor:
    """The control: uniform noise at a quarter of the input's side."""
    B, H = x.shape[0], x.shape[-1]
    return torch.rand(B, len(model.config.aus), H // 4, H // 4, generator=torch.Generator().manual_seed(seed))


def _own_attention(model, x: torch.Tensor, seed: int) -> torch.Tensor:
    """The model's own spatial attention per AU: an AGCM head's, or an attention readout's."""
    with torch.no_grad():
        return model.latent(x).attention.cpu()


def _traced(fn):
    """``fn(model, trace, s)`` on the encoder's trace of ``x`` and the AU scores, with gradients on."""
    def compute(model, x: torch.Tensor, seed: int):
        with torch.enable_grad():
            trace = model.encoder.trace(x)
            return fn(model, trace, model.latent_from_trace(trace).z_logits)
    return compute


def _rollout_maps(model, x: torch.Tensor, seed: int) -> torch.Tensor:
    with torch.enable_grad():
        return _rollout(model, x)


def _grads(s: torch.Tensor, tensors: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    """∂s_k/∂t for every AU k and every tensor t: ``out[k][i]``."""
    K = s.shape[1]
    return [list(torch.autograd.grad(s[:, k].sum(), tensors, retain_graph=True)) for k in range(K)]


def _fuse(encoder, hidden: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """ReLU(Σ_c β_c A_c) with β_c the spatial mean of the gradient: [B, h, w]."""
    A, G = encoder.grid(hidden), encoder.grid(grad)
    beta = G.mean(dim=(2, 3), keepdim=True)
    return F.relu((beta * A).sum(dim=1))


def _gradcam(model, last: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    grads = _grads(s, [last])
    return torch.stack([_fuse(model.encoder, last, g[0]) for g in grads], dim=1).detach().cpu()


def _rollout(model, x: torch.Tensor) -> torch.Tensor:
    trace = model.encoder.trace(x, attentions=True)
    s = model.latent_from_trace(trace).z_logits
    attn = trace.attentions
    grads = _grads(s, attn)
    B, T = x.shape[0], attn[0].shape[-1]
    side = int(round((T - 1) ** 0.5))
    eye = torch.eye(T, device=x.device).expand(B, T, T)
    maps = []
    for k in range(s.shape[1]):
        R = eye.clone()
        for A, G in zip(attn, grads[k]):
            cam = (G * A).clamp(min=0).mean(dim=1)  # [B, T, T]
            R = R + torch.bmm(cam, R)
        maps.append(R[:, 0, 1:].reshape(B, side, side))
    return torch.stack(maps, dim=1).detach().cpu()


def _importance_order(encoder, hidden: torch.Tensor, grad: torch.Tensor, top: int) -> torch.Tensor:
    """Channels by CE-FAM importance β_c z^l_c, most important first: [B, top]."""
    A, G = encoder.grid(hidden), encoder.grid(grad)
    importance = G.mean(dim=(2, 3)) * A.mean(dim=(2, 3))
    return importance.argsort(dim=1, descending=True)[:, :top]


def channel_masking(model, trace, layer: int, orders: torch.Tensor, b: int) -> tuple[torch.Tensor, torch.Tensor]:
    """CE-FAM's masking curves for image ``b`` at ``layer``: for each AU k, its channels
    ``orders[k]`` ([K, T]) are replaced one by one, cumulatively, by the layer's mean activation
    m^l, and the rest of the network is run on every step (one batch of K·T).

    Returns (fall of s_k, [K, T]; fall of every class probability p^c, [K, T, C]), each against the
    unmasked image: their means over T are the association score and the contribution."""
    enc = model.encoder
    hidden = trace.layers[layer][b:b + 1].detach()
    K, T = orders.shape
    grid = enc.grid(hidden)  # [1, C, h, w]
    m = grid.mean()  # m^l = (1/|C|) Σ_c z^l_c
    steps = torch.zeros(K, T, grid.shape[1], dtype=torch.bool, device=grid.device)
    for j in range(T):
        steps[:, j].scatter_(1, orders[:, : j + 1], True)
    steps = steps.reshape(K * T, -1)
    if enc.kind == "resnet":
        batch = grid.expand(K * T, -1, -1, -1).clone()
        batch[steps] = m
    else:  # ViT: the channel is a feature of every patch token (CLS kept)
        batch = hidden.expand(K * T, -1, -1).clone()
        patches = batch[:, 1:]
        patches.masked_fill_(steps[:, None, :], float(m))
    with torch.no_grad():
        base = model.latent_from_trace(enc.resume(layer, hidden))
        z0, p0 = base.z_logits[0], torch.softmax(base.head(base.z), dim=-1)[0]
        out = model.latent_from_trace(enc.resume(layer, batch))
        p = torch.softmax(out.head(out.z), dim=-1).reshape(K, T, -1)
        s = out.z_logits.reshape(K, T, -1)
    k = torch.arange(K, device=s.device)
    fall_s = z0[k][:, None] - s[k, :, k]  # [K, T]
    return fall_s, p0[None, None, :] - p


def _cefam(model, trace, s: torch.Tensor) -> AUMaps:
    enc = model.encoder
    L = len(trace.layers)
    grads = _grads(s, trace.layers)  # [K][L]
    B, K = s.shape
    C = len(model.config.classes)
    cand = [torch.stack([_fuse(enc, hidden, grads[k][i]) for k in range(K)], dim=1).detach()
            for i, hidden in enumerate(trace.layers)]  # L × [B, K, h_l, w_l]
    assoc = torch.zeros(B, K, L)
    contrib = torch.zeros(B, K, L, C)
    for i, hidden in enumerate(trace.layers):
        top = min(TOP_CHANNELS, enc.grid(hidden).shape[1])
        orders = torch.stack([_importance_order(enc, hidden, grads[k][i], top) for k in range(K)], dim=1)
        for b in range(B):
            fall_s, fall_p = channel_masking(model, trace, i, orders[b], b)
            assoc[b, :, i] = fall_s.mean(dim=1).cpu()
            contrib[b, :, i] = fall_p.mean(dim=1).cpu()
    layer = assoc.argmax(dim=2)  # [B, K]: CE-FAM's layer of each AU in each image
    size = max(c.shape[-1] for c in cand)
    ups = torch.stack([upsample(c, size).cpu() for c in cand], dim=2)  # [B, K, L, size, size]
    maps = ups.gather(2, layer[:, :, None, None, None].expand(-1, -1, 1, size, size))[:, :, 0]
    chosen = contrib.gather(2, layer[:, :, None, None].expand(-1, -1, 1, C))[:, :, 0]
    return AUMaps(maps, "cefam", list(model.config.aus), layer, assoc, chosen)


def upsample(maps: torch.Tensor, size: int) -> torch.Tensor:
    """[B, K, h, w] → [B, K, size, size], bilinear."""
    if maps.shape[-1] == size and maps.shape[-2] == size:
        return maps
    return F.interpolate(maps.float(), size=(size, size), mode="bilinear", align_corners=False)


def contributions(model, pixel_values: torch.Tensor) -> torch.Tensor:
    """CE-FAM's concept contributions (§3.4) of every AU to every class score: [B, K, C].

    For AU k, the channels of its CE-FAM layer are masked in descending order of β_c z^l_c (its top
    20, each replaced by the layer's mean activation) and the contribution to class c is the mean
    fall of p^c along the way (the area under the masking curve): positive when the AU's channels
    hold the class up, negative when masking them raises it.
    """
    return au_maps(model, pixel_values, "cefam").contribution


def to_image(maps: torch.Tensor, size: int) -> np.ndarray:
    """Maps brought to the image ([B, K, size, size]) and scaled to [0, 1] per map, for display."""
    up = upsample(maps, size)
    lo = up.amin(dim=(2, 3), keepdim=True)
    hi = up.amax(dim=(2, 3), keepdim=True)
    return ((up - lo) / (hi - lo).clamp(min=1e-12)).numpy()


for _method in (
    MapMethod("gradcam", _traced(lambda model, trace, s: _gradcam(model, trace.layers[-1], s))),
    MapMethod("cefam", _traced(_cefam)),
    MapMethod("rollout", _rollout_maps, lambda model: None if model.encoder.kind == "vit"
              else "rollout needs a ViT encoder (use gradcam or cefam on a ResNet)"),
    MapMethod("agcm", _own_attention, lambda model: None if model.config.head == "agcm"
              else "the agcm maps are the concept attention of a head: agcm reasoner"),
    MapMethod("attention", _own_attention, lambda model: None if model.config.au_readout == "attention"
              else "the attention maps are the AU readout's of an au_readout: attention reasoner"),
    MapMethod("random", _random),
):
    MAP_METHODS.register(_method.name, _method)
METHODS = tuple(MAP_METHODS.names())
