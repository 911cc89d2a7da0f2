"""The paper's AU-token gate, the ``soft`` decoding mode: β·min(z_k − ½, 0) on the logit of each AU
token ``<AUk>`` — nothing when the reasoner sees the AU (z_k ≥ ½), a penalty growing to −β/2 as
z_k → 0. With a finite β an LM that wants an inactive AU enough still names it, and nothing stops it
spelling the AU with ordinary tokens; the default ``gated`` mode (:mod:`facr.verbalizer.plan`)
realises the reasoner's plan instead and makes both exact.

Rows of ``scores`` are samples (or samples × beams, in order); ``z`` is expanded to match, so the
processor works batched and with left padding (padding changes positions, not rows).
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessor

from facr.au import ACTIVE


def gate_bias(z: torch.Tensor, beta: float | None) -> torch.Tensor:
    """β·min(z − ½, 0) per AU; β = None or inf is the hard limit on the AU tokens: −inf below ½, 0
    from ½ up — with any finite β an AU at z = ½ − δ keeps a penalty of only β·δ, so a confident LM
    could still name it."""
    shortfall = torch.clamp(z.float() - ACTIVE, max=0.0)
    if beta is None or beta == float("inf"):
        return torch.where(shortfall < 0, torch.full_like(shortfall, float("-inf")), torch.zeros_like(shortfall))
    return beta * shortfall


class AUGateLogitsProcessor(LogitsProcessor):
    """Adds β·min(z_k − ½, 0) to the logit of AU token k."""

    def __init__(self, au_token_ids: list[int], z: torch.Tensor, beta: float | None = None):
        if z.dim() != 2 or z.shape[1] != len(au_token_ids):
            raise ValueError(f"z must be [B, {len(au_token_ids)}], got {tuple(z.shape)}")
        self.ids = torch.as_tensor(au_token_ids, dtype=torch.long)
        self.bias = gate_bias(z, beta)  # [B, K]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        rows = scores.shape[0]
        bias = self.bias.to(scores.device)
        if rows != bias.shape[0]:  # beams / num_return_sequences: each sample's rows are contiguous
            bias = bias.repeat_interleave(rows // bias.shape[0], dim=0)
        scores = scores.clone()
        scores[:, self.ids.to(scores.device)] += bias.to(scores.dtype)
        return scores
