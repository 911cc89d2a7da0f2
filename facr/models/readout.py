"""How the encoder's features become the AU logits f(x) (``au_readout:`` of a reasoner).

* ``pool`` (the paper's, the default): one linear map of the globally pooled features. Every AU
  reads the same pooled vector, so z_k may read anything the image holds — the AUs that co-occur
  with k as much as AU k's own pixels.
* ``attention``: each AU k has its own spatial attention over the last feature grid,
  â_k = softmax_p(w_k^a · F(p)), and reads only the features it attends to,
  z_k = σ(w_k · Σ_p â_k(p) F(p) + b_k) — where AU k is seen is part of the model, and with
  ``loss.lambda_m`` > 0 it is supervised by the AU's region (AGCM's concept map loss,
  :func:`facr.models.agcm.map_loss`; the benchmark's masks, or 68-landmark ROIs). The head still
  reads z alone, so every latent intervention and audit is unchanged; the maps are the model's
  own answer to "where is AU k seen" (``facr explain --method attention``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

READOUTS = ("pool", "attention")


def check_readout(name: str) -> None:
    """ValueError naming the field unless ``name`` is one of :data:`READOUTS` (a reasoner's config and a
    training config both check it)."""
    if name not in READOUTS:
        raise ValueError(f"au_readout must be one of {', '.join(READOUTS)}, got {name!r}")


class AttentionReadout(nn.Module):
    """Feature grid ``[B, D, h, w]`` → (AU logits ``[B, K]``, attention ``[B, K, h, w]``, each map summing to 1)."""

    def __init__(self, dim: int, n_aus: int):
        super().__init__()
        self.attend = nn.Conv2d(dim, n_aus, 1)
        self.weight = nn.Parameter(torch.empty(n_aus, dim))
        self.bias = nn.Parameter(torch.zeros(n_aus))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Linear's initialisation, per AU
        bound = 1 / math.sqrt(dim)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, D, h, w = grid.shape
        attention = torch.softmax(self.attend(grid).flatten(2).float(), dim=-1).to(grid.dtype)  # [B, K, h·w]
        feats = torch.einsum("bkp,bdp->bkd", attention, grid.flatten(2))  # [B, K, D]
        z_logits = (feats * self.weight).sum(-1) + self.bias
        return z_logits, attention.reshape(B, -1, h, w)
