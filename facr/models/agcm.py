"""AGCM's attention-guided concept generator as a facr head (``head: agcm``).

Li & Mahmoud, "Interpretable Concept-based Deep Learning Framework for Multimodal Human Behavior
Modeling" (AGCM; ``../shared/papers/agcm-*.txt``, §III-B and Fig. 4), on facr's encoder:

- **Multi-scale spatial attention (MSA)**: three convolutional heads (1×1, 3×3, 5×5) each give
  every concept (AU) a spatial attention map over the last feature grid; their softmax-normalised
  maps are mixed with learned weights into one map â_k per AU — the map the concept map loss
  supervises with the AU's ROI map and the map facr scores with NRA.
- **Channel-attended concept mapping (CACM)**: a squeeze-and-excitation gate over channels, then each
  concept's feature is its attention-pooled, channel-gated feature f_k = Σ_p â_k(p) (g ⊙ F(p)).
- **Activated / inactivated concept embeddings** ĉ⁺_k, ĉ⁻_k (LeakyReLU of per-concept linear maps of
  f_k, embedding size 16 as in the paper), a shared **concept probability generator**
  p_k = σ(w·[ĉ⁺_k, ĉ⁻_k] + b) — facr's AU latent z — and the mix ĉ_k = p_k ĉ⁺_k + (1 − p_k) ĉ⁻_k
  passed to a **one-layer** task predictor.

facr's do(z_k = v) on this head is the concept-embedding intervention: ĉ_k := v ĉ⁺_k + (1 − v) ĉ⁻_k
with the image's embeddings held fixed. The embeddings carry image information past z (that is the
design of concept-embedding models), so the head is a function of (z, embeddings), not of z alone:
:meth:`AGCMHead.bind` closes over one batch's embeddings and gives ``facr.causal`` the z → logits
function it intervenes on.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from facr.models.heads import HEADS, HeadSpec


@dataclass
class ConceptOutput:
    z_logits: torch.Tensor  # [B, K], logit of p_k
    positive: torch.Tensor  # ĉ⁺ [B, K, E]
    negative: torch.Tensor  # ĉ⁻ [B, K, E]
    attention: torch.Tensor  # â [B, K, h, w], each map sums to 1


class AGCMConcepts(nn.Module):
    """Feature grid ``[B, D, h, w]`` → per-AU attention maps, embeddings and concept logits."""

    def __init__(self, dim: int, n_concepts: int, embedding: int = 16, dropout: float = 0.01,
                 kernels: tuple[int, ...] = (1, 3, 5), reduction: int = 4):
        super().__init__()
        K = n_concepts
        self.msa = nn.ModuleList(nn.Conv2d(dim, K, k, padding=k // 2) for k in kernels)
        self.scale_weights = nn.Parameter(torch.zeros(len(kernels)))
        hidden = max(1, dim // reduction)
        self.cacm = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim), nn.Sigmoid())
        self.pos = nn.Parameter(torch.empty(K, dim, embedding))
        self.neg = nn.Parameter(torch.empty(K, dim, embedding))
        self.pos_bias = nn.Parameter(torch.zeros(K, embedding))
        self.neg_bias = nn.Parameter(torch.zeros(K, embedding))
        for w in (self.pos, self.neg):
            nn.init.normal_(w, std=dim ** -0.5)
        self.score = nn.Linear(2 * embedding, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, grid: torch.Tensor) -> ConceptOutput:
        B, D, h, w = grid.shape
        mix = torch.softmax(self.scale_weights, dim=0)
        attention = sum(m * torch.softmax(head(grid).flatten(2), dim=-1) for m, head in zip(mix, self.msa))
        gate = self.cacm(grid.mean(dim=(2, 3)))  # [B, D]
        tokens = grid.flatten(2) * gate.unsqueeze(-1)  # [B, D, h·w]
        feats = torch.einsum("bkp,bdp->bkd", attention, tokens)  # f_k, [B, K, D]
        positive = F.leaky_relu(torch.einsum("bkd,kde->bke", feats, self.pos) + self.pos_bias)
        negative = F.leaky_relu(torch.einsum("bkd,kde->bke", feats, self.neg) + self.neg_bias)
        positive, negative = self.dropout(positive), self.dropout(negative)
        z_logits = self.score(torch.cat([positive, negative], dim=-1)).squeeze(-1)
        return ConceptOutput(z_logits, positive, negative, attention.reshape(B, -1, h, w))


class AGCMHead(nn.Module):
    """y(ĉ): the one-layer task predictor over the mixed concept embeddings."""

    def __init__(self, n_concepts: int, n_classes: int, embedding: int = 16):
        super().__init__()
        self.linear = nn.Linear(n_concepts * embedding, n_classes)

    def forward(self, z: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
        p = z.unsqueeze(-1)
        mixed = p * positive + (1 - p) * negative
        return self.linear(mixed.flatten(1))

    def bind(self, positive: torch.Tensor, negative: torch.Tensor):
        """z → logits for this batch's embeddings. A z batch that is a whole multiple of the
        embeddings' batch (``facr.causal`` stacks the K + 1 interventions of each sample) reuses
        each sample's embeddings for its rows."""
        B = positive.shape[0]

        def head(z: torch.Tensor) -> torch.Tensor:
            if z.shape[0] == B:
                return self(z, positive, negative)
            if z.shape[0] % B:
                raise ValueError(f"z has {z.shape[0]} rows, not a multiple of the {B} bound samples")
            r = z.shape[0] // B
            return self(z, positive.repeat_interleave(r, dim=0), negative.repeat_interleave(r, dim=0))

        return head


def map_loss(attention: torch.Tensor, roi: torch.Tensor, roi_mask: torch.Tensor) -> torch.Tensor:
    """AGCM's concept map loss (paper Eq. 2), 1 − cos(â_k, a_k), averaged over the (sample, AU)
    pairs that have an ROI map (``roi_mask`` [B, K]). ``roi`` [B, K, H, W] is average-pooled to the
    attention grid first (the paper's Eq. 1, "average interpolation" to patch level)."""
    h, w = attention.shape[-2:]
    target = F.adaptive_avg_pool2d(roi.float(), (h, w)) if roi.shape[-2:] != (h, w) else roi.float()
    cos = F.cosine_similarity(attention.flatten(2).float(), target.flatten(2), dim=-1, eps=1e-8)  # [B, K]
    mask = roi_mask.to(cos.dtype) * (target.flatten(2).sum(-1) > 0).to(cos.dtype)
    return ((1 - cos) * mask).sum() / mask.sum().clamp(min=1)


def _modules(dim: int, K: int, C: int, config) -> dict[str, nn.Module]:
    return {"concepts": AGCMConcepts(dim, K, config.concept_embedding),
            "head": AGCMHead(K, C, config.concept_embedding)}


HEADS.register("agcm", HeadSpec("agcm", "AGCM's attention-guided concept head: z and the image's concept "
                                "embeddings (not z-only)", _modules))
