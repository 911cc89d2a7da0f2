"""The ONE intervention mechanism: do(z_k = v) on the AU latent, and its effects on the head.

The training loss (``facr.losses``), the audits, the verbalizer's evaluation and the app all
call :func:`intervention_effects`; nothing else in facr intervenes on z. All K interventions of a
batch go through the head in a single call: z is expanded to ``[B, K+1, K]`` (row 0 factual,
row k+1 = do(z_k = v)) and flattened to ``[B·(K+1), K]``.

Notation (paper §3): z ∈ (0,1)^K the AU latent, ŷ = head(z) the class logits, Pa(c) the direct
parents of class c in G with polarities s_kc, and the intervention effect
Δ_kc = ŷ_c − ŷ_c^{do(z_k = v)}.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from facr.au import ACTIVE


def do(z: torch.Tensor, aus: int | Sequence[int] | torch.Tensor, value: float | torch.Tensor = 0.0) -> torch.Tensor:
    """A copy of ``z`` ([B, K]) with ``z[:, k] := value`` for every k in ``aus`` (indices into K)."""
    out = z.clone()
    idx = torch.as_tensor(aus, dtype=torch.long, device=z.device).reshape(-1)
    out[:, idx] = torch.as_tensor(value, dtype=z.dtype, device=z.device)
    return out


def intervene_all(z: torch.Tensor, value: float | torch.Tensor = 0.0) -> torch.Tensor:
    """``[B, K+1, K]``: row 0 is z, row k+1 is do(z_k = value) — every single-AU intervention at once."""
    B, K = z.shape
    grid = z.unsqueeze(1).expand(B, K + 1, K).clone()
    eye = torch.eye(K, dtype=torch.bool, device=z.device)
    grid[:, 1:][eye.expand(B, K, K)] = torch.as_tensor(value, dtype=z.dtype, device=z.device)
    return grid


@dataclass
class Effects:
    """The head's answer to every single-AU intervention on a batch.

    ``logits``: ŷ, [B, C]. ``cf_logits``: ŷ^{do(z_k = v)}, [B, K, C].
    ``delta``: Δ = ŷ − ŷ^{do(z_k = v)}, [B, K, C] (positive = the AU raised the logit).
    """

    logits: torch.Tensor
    cf_logits: torch.Tensor
    value: float

    @property
    def delta(self) -> torch.Tensor:
        return self.logits.unsqueeze(1) - self.cf_logits

    def for_class(self, target: torch.Tensor) -> torch.Tensor:
        """Δ_{k, c_b} for each sample's class ``target[b]``: [B, K]."""
        idx = target.long().view(-1, 1, 1).expand(-1, self.cf_logits.shape[1], 1)
        return self.delta.gather(2, idx).squeeze(2)


def intervention_effects(head: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor,
                         value: float = 0.0) -> Effects:
    """ŷ and ŷ^{do(z_k = value)} for all K AUs in **one** batched ``head`` call."""
    B, K = z.shape
    out = head(intervene_all(z, value).reshape(B * (K + 1), K)).reshape(B, K + 1, -1)
    return Effects(logits=out[:, 0], cf_logits=out[:, 1:], value=float(value))


def intervention_effects_loop(head: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor,
                              value: float = 0.0) -> Effects:
    """The same as :func:`intervention_effects` with one head call per AU (reference and benchmark only)."""
    logits = head(z)
    cf = torch.stack([head(do(z, k, value)) for k in range(z.shape[1])], dim=1)
    return Effects(logits=logits, cf_logits=cf, value=float(value))


@dataclass
class PairMasks:
    """Which (sample, AU) pairs each faithfulness term covers, for each sample's class c_b.

    ``sign``: s_{k c_b} ∈ {−1, 0, +1}, [B, K]. ``causal``: k ∈ Pa(c_b) (and, with scope
    ``active``, z_k > threshold). ``irrelevant``: k ∉ Pa(c_b).
    """

    sign: torch.Tensor
    causal: torch.Tensor
    irrelevant: torch.Tensor


def pair_masks(signs: torch.Tensor, target: torch.Tensor, z: torch.Tensor | None = None,
               scope: str = "all", threshold: float = ACTIVE) -> PairMasks:
    """Per-sample parent masks from the graph's sign matrix ``signs`` ([K, C]) and classes ``target``.

    ``scope='all'`` (the paper): every parent of c counts for sensitivity, active or not — an
    inactive parent (z_k ≈ 0) cannot move the logit when set to 0, so its hinge stays at γ and
    pushes the encoder to switch it on. ``scope='active'``: only parents with z_k > ``threshold``
    count, i.e. the model is asked to depend on the causal AUs *it sees*, not to hallucinate absent
    ones. Invariance covers every non-parent in both scopes.
    """
    if scope not in ("all", "active"):
        raise ValueError(f"scope must be 'all' or 'active', got {scope!r}")
    sign = signs.to(target.device)[:, target.long()].T.to(torch.int8)  # [B, K]
    parent = sign != 0
    causal = parent
    if scope == "active":
        if z is None:
            raise ValueError("scope='active' needs z")
        causal = parent & (z > threshold)
    return PairMasks(sign=sign, causal=causal, irrelevant=~parent)


def graph_signs(graph, aus: Sequence[str], classes: Sequence[str]) -> torch.Tensor:
    """s [K, C] of ``graph`` (a :class:`facr.graph.AUGraph`) in the model's AU and class orders (int8:
    +1, −1, 0); a class the graph lacks has no parents."""
    out = torch.zeros(len(aus), len(classes), dtype=torch.int8)
    known = [c for c in classes if c in graph.classes]
    if known:
        s = torch.as_tensor(graph.sign_matrix(list(aus), known))
        for j, c in enumerate(known):
            out[:, list(classes).index(c)] = s[:, j]
    return out
