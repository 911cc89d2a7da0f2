"""The FACR objective (paper Eq. 2–4), every counterfactual term through ``facr.causal``.

L = CE(ŷ, y) + λa·BCE(z, a) + λs·L_sens + λi·L_inv [+ λm·L_map + λot·L_OT], with, for the target class c = y,

    L_sens = mean_{k ∈ Pa(c)} [γ − s_kc (ŷ_c − ŷ_c^{do(z_k=0)})]_+
    L_inv  = mean_{k ∉ Pa(c)} (ŷ_c − ŷ_c^{do(z_k=0)})²

Each mean is over a sample's pairs, then over the samples that have such pairs (a class with no
parent, e.g. ``neutral``, adds nothing to L_sens). The AU BCE is taken only over coded AUs
(``au_mask``): datasets that do not code an AU give it no gradient.

Two optional terms come from the neighbouring methods (both off unless asked for):
``L_map`` is AGCM's concept map loss (``head: agcm``, :func:`facr.models.agcm.map_loss`), and
``L_OT`` the circumplex optimal-transport cost (``loss.circumplex_ot`` > 0,
:func:`facr.circumplex.ot_loss`; ``loss.ot_cost: uniform`` is its control).

Where the data code AU intensities (FACS A–E as 1–5), ``loss.au_intensity`` > 0 adds λint·L_int
(:func:`au_intensity_loss`): z_k's logit also orders the intensity, with fixed cut points at
0, g, 2g, … so that z_k = σ(logit) stays the presence probability and a stronger AU sits further
above ½.

``loss.presence_plateau`` > 0 adds λplat·L_plat (:func:`plateau_term`), a term on the head alone: the
class logit must not move when a present parent's z sinks by up to ``plateau_width`` (a wobble of
the encoder's confidence), while L_sens still asks it to move when the parent is gone (z_k = 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from facr.au import ACTIVE
from facr.causal import Effects, PairMasks, pair_masks

MAX_INTENSITY = 5  # FACS intensities A–E, coded 1–5
MAX_INTENSITY_GAP = 10.0  # a bound against typos: at 10, intensity E's cut point is logit 40, where σ is 1 in float32
MAX_PLATEAU_WIDTH = 0.5  # a present parent (z > ½) sunk by more than ½ could reach 0, where L_sens asks for a move


@dataclass
class LossWeights:
    """λa, λs, λi, the margin γ, and the sensitivity scope (see :func:`facr.causal.pair_masks`)."""

    lambda_a: float = 1.0
    lambda_s: float = 0.5
    lambda_i: float = 8.0
    gamma: float = 0.5
    scope: str = "all"
    active_threshold: float = ACTIVE
    lambda_m: float = 1.0  # AGCM's concept map loss (head: agcm only; the paper's weight 1)
    circumplex_ot: float = 0.0  # weight of the OT term; 0 = off
    ot_cost: str = "circumplex"  # circumplex | uniform (the control: 1 off the diagonal)
    # AU BCE positive weight (neg_k / pos_k)^au_balance over the training labels: 0 = plain BCE, 1 = each AU's
    # positives weigh as much as its negatives. Rare AUs (AU14, AU17, AU43 on the benchmark) are never
    # detected at 0: the plain BCE is lowest when they are always called absent.
    au_balance: float = 0.0
    # true: the class terms (CE, L_sens, L_inv, L_OT) train the head only and z learns from the AU labels
    # (and facr.grounding's pairs) alone — a concept bottleneck's sequential training. Trained jointly, the
    # CE pulls whatever predicts the class into z: an AU's co-occurring AUs, a background hue.
    detach_z: bool = False
    # weight of the AU intensity terms (au_intensity_loss; 0 = off) and the logit gap between their cut points
    au_intensity: float = 0.0
    au_intensity_gap: float = 2.0
    # weight of the head's plateau over present parents (plateau_term; 0 = off) and how far z may sink on it
    presence_plateau: float = 0.0
    plateau_width: float = 0.08

    def __post_init__(self):
        if self.ot_cost not in ("circumplex", "uniform"):
            raise ValueError(f"ot_cost must be 'circumplex' or 'uniform', got {self.ot_cost!r}")
        for name in ("lambda_a", "lambda_s", "lambda_i", "gamma", "lambda_m", "circumplex_ot", "au_balance",
                     "au_intensity", "presence_plateau"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 < self.au_intensity_gap <= MAX_INTENSITY_GAP:
            raise ValueError(f"au_intensity_gap must be in (0, {MAX_INTENSITY_GAP:g}], got {self.au_intensity_gap}")
        if not 0.0 < self.plateau_width <= MAX_PLATEAU_WIDTH:
            raise ValueError(f"plateau_width must be in (0, {MAX_PLATEAU_WIDTH:g}], got {self.plateau_width}")
        if self.scope not in ("all", "active"):
            raise ValueError(f"scope must be 'all' or 'active', got {self.scope!r}")
        if not 0.0 < self.active_threshold < 1.0:
            raise ValueError(f"active_threshold must be in (0, 1), got {self.active_threshold}")

    @property
    def faithful(self) -> bool:
        return self.lambda_s > 0 or self.lambda_i > 0


def _masked_mean_per_sample(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over each sample's masked pairs, then over samples with at least one pair (0 if none)."""
    mask = mask.to(values.dtype)
    count = mask.sum(dim=1)
    per_sample = (values * mask).sum(dim=1) / count.clamp(min=1)
    has = count > 0
    if not bool(has.any()):
        return values.new_zeros(())
    return per_sample[has].mean()


def sensitivity_term(delta_c: torch.Tensor, masks: PairMasks, gamma: float) -> torch.Tensor:
    """L_sens from Δ_{k c_b} ([B, K]) and the pair masks."""
    hinge = F.relu(gamma - masks.sign.to(delta_c.dtype) * delta_c)
    return _masked_mean_per_sample(hinge, masks.causal)


def invariance_term(delta_c: torch.Tensor, masks: PairMasks) -> torch.Tensor:
    """L_inv from Δ_{k c_b} ([B, K]) and the pair masks."""
    return _masked_mean_per_sample(delta_c.pow(2), masks.irrelevant)


@dataclass
class LossOutput:
    total: torch.Tensor
    ce: torch.Tensor
    au_bce: torch.Tensor
    sens: torch.Tensor
    inv: torch.Tensor
    maps: torch.Tensor | None = None
    ot: torch.Tensor | None = None
    intensity: torch.Tensor | None = None
    plateau: torch.Tensor | None = None

    def as_floats(self) -> dict[str, float]:
        keys = ("total", "ce", "au_bce", "sens", "inv", "maps", "ot", "intensity", "plateau")
        return {k: float(getattr(self, k).detach()) for k in keys if getattr(self, k) is not None}


def au_bce(z_logits: torch.Tensor, au_targets: torch.Tensor, au_mask: torch.Tensor,
           pos_weight: torch.Tensor | None = None) -> torch.Tensor:
    """BCE(σ(z_logits), a) over coded AUs only (``au_mask`` = 1 where the dataset codes the AU);
    ``pos_weight`` [K] weighs each AU's positives (:func:`au_pos_weight`)."""
    mask = au_mask.to(z_logits.dtype)
    per = F.binary_cross_entropy_with_logits(z_logits, au_targets.to(z_logits.dtype), reduction="none",
                                             pos_weight=pos_weight)
    return (per * mask).sum() / mask.sum().clamp(min=1)


def au_intensity_loss(z_logits: torch.Tensor, au_intensity: torch.Tensor, gap: float) -> torch.Tensor:
    """L_int: the AU intensities as ordinal targets of z's own logits, with fixed cut points.

    For each coded level I (``au_intensity`` [B, K], NaN where not coded: the intensity counted so
    that level 1 is the weakest one the data call present, :class:`facr.data.torch_data.FaceTorchDataset`)
    and j = 2…5, BCE(σ(logit − (j−1)·gap), I ≥ j), summed over j and averaged over the coded
    entries. The cut point of presence (j = 1) is the AU BCE's own, at 0, so z_k = σ(logit) keeps
    its meaning; these terms only ask a stronger AU to sit further above it (a cumulative-link model
    with fixed cut points: no parameter is added)."""
    coded = ~torch.isnan(au_intensity)
    if not bool(coded.any()):
        return z_logits.new_zeros(())
    logits, target = z_logits[coded], au_intensity[coded].to(z_logits.dtype)
    cuts = gap * torch.arange(1, MAX_INTENSITY, dtype=logits.dtype, device=logits.device)  # j - 1 = 1…4
    steps = torch.arange(2, MAX_INTENSITY + 1, dtype=logits.dtype, device=logits.device)
    per = F.binary_cross_entropy_with_logits(logits[:, None] - cuts, (target[:, None] >= steps).to(logits.dtype),
                                             reduction="none")
    return per.sum(dim=1).mean()


def plateau_term(head, z: torch.Tensor, target: torch.Tensor, signs: torch.Tensor, width: float,
                 threshold: float, u: torch.Tensor) -> torch.Tensor:
    """L_plat: mean over the samples of (ŷ_c(z − width·u⊙m) − ŷ_c(z))², on the head alone (z detached).

    ``m`` marks the present parents of each sample's class c = ``target[b]`` (k ∈ Pa(c) with
    z_k > ``threshold``), ``u`` ([B, K], in [0, 1]) how far each sinks. A confidently present AU's z
    wobbles when another AU leaves the face (the pixel audit's leakage); a head that is steep there
    turns the wobble into a move of the class logit, which pixel invariance counts as a failure. The
    term flattens the head over that strip and leaves the rest alone: do(z_k = 0), L_sens's and the
    audits' intervention, still lies far below it."""
    z = z.detach()
    t = target.long()
    present = (signs.to(z.device)[:, t].T != 0) & (z > threshold)
    sunk = z - width * u.to(z.dtype) * present.to(z.dtype)
    rows = torch.arange(len(t), device=z.device)
    return (head(sunk)[rows, t] - head(z)[rows, t]).pow(2).mean()


def intensity_problem(au_intensity, weight: float) -> str | None:
    """Why ``loss.au_intensity`` = ``weight`` cannot train on these levels (float ``[N, K]``, NaN =
    not coded: ``FaceTorchDataset.au_intensity``), or None: none is coded, or one is above level 5."""
    if weight == 0:
        return None
    level = torch.as_tensor(au_intensity, dtype=torch.float64)
    coded = level[~torch.isnan(level)]
    if coded.numel() == 0:
        return "loss.au_intensity needs AU intensities (0-5), and no training record codes one"
    if float(coded.max()) > MAX_INTENSITY:
        return (f"loss.au_intensity orders FACS intensities A-E (levels 1-{MAX_INTENSITY}), but the training "
                f"records code levels up to {float(coded.max()):g}")
    return None


def au_pos_weight(au_targets, au_mask, balance: float) -> torch.Tensor | None:
    """Per-AU positive weights (neg_k / pos_k)^balance from training labels ``[N, K]`` (coded entries
    only); an AU with no positive or no negative gets 1. None when ``balance`` is 0."""
    if balance == 0:
        return None
    t, m = torch.as_tensor(au_targets, dtype=torch.float64), torch.as_tensor(au_mask, dtype=torch.float64)
    pos, neg = (t * m).sum(0), ((1 - t) * m).sum(0)
    ratio = torch.where((pos > 0) & (neg > 0), neg / pos.clamp(min=1), torch.ones_like(pos))
    return ratio.pow(balance).float()


def facr_loss(effects: Effects, z: torch.Tensor, z_logits: torch.Tensor, target: torch.Tensor,
              au_targets: torch.Tensor, au_mask: torch.Tensor, signs: torch.Tensor,
              weights: LossWeights, class_weight: torch.Tensor | None = None, *,
              attention: torch.Tensor | None = None, roi: torch.Tensor | None = None,
              roi_mask: torch.Tensor | None = None, ot_cost: torch.Tensor | None = None,
              au_pos_weight: torch.Tensor | None = None, class_rows: torch.Tensor | None = None,
              au_intensity: torch.Tensor | None = None, head=None) -> LossOutput:
    """The full objective for one batch. ``signs`` is the graph's [K, C] sign matrix s.

    ``attention`` (AGCM's â, [B, K, h, w]) with ``roi`` ([B, K, H, W]) and ``roi_mask`` ([B, K])
    adds λm·L_map; ``ot_cost`` ([C, C], :func:`facr.circumplex.cost_matrix`) adds λot·L_OT;
    ``au_pos_weight`` ([K], :func:`au_pos_weight`) weighs the AU BCE's positives. ``class_rows``
    (bool [B]; None: all) are the rows the class terms (CE, L_sens, L_inv, L_OT) score; the AU terms
    score every row (faces redrawn to train z only: ``grounding.decorrelate``). ``au_intensity``
    ([B, K], NaN = not coded) adds λint·L_int when ``weights.au_intensity`` > 0. ``head`` (z → class
    logits) adds λplat·L_plat on the class rows when ``weights.presence_plateau`` > 0 (required then).
    Computed in float32 whatever the autocast dtype (bf16/fp16 logits are upcast first)."""
    if effects.logits.dtype != torch.float32:
        effects = Effects(effects.logits.float(), effects.cf_logits.float(), effects.value)
        z, z_logits = z.float(), z_logits.float()
    bce = au_bce(z_logits, au_targets, au_mask, au_pos_weight)
    zero = bce.new_zeros(())
    c_effects, c_z, c_target = effects, z, target
    if class_rows is not None and not bool(class_rows.all()):
        keep = class_rows.to(effects.logits.device).bool()
        c_effects = Effects(effects.logits[keep], effects.cf_logits[keep], effects.value)
        c_z, c_target = z[keep], target[keep]
    if len(c_target) == 0:  # a batch of redrawn faces only: nothing for the class terms
        ce = sens = inv = zero
    else:
        ce = F.cross_entropy(c_effects.logits, c_target.long(), weight=class_weight)
        sens = inv = zero
        if weights.faithful:
            masks = pair_masks(signs, c_target, c_z, weights.scope, weights.active_threshold)
            delta_c = c_effects.for_class(c_target)
            sens = sensitivity_term(delta_c, masks, weights.gamma)
            inv = invariance_term(delta_c, masks)
    total = ce + weights.lambda_a * bce + weights.lambda_s * sens + weights.lambda_i * inv
    maps = ot = None
    if attention is not None and roi is not None and roi_mask is not None:
        from facr.models.agcm import map_loss

        maps = map_loss(attention, roi, roi_mask)
        total = total + weights.lambda_m * maps
    if ot_cost is not None and weights.circumplex_ot > 0 and len(c_target):
        from facr.circumplex import ot_loss

        ot = ot_loss(c_effects.logits, c_target, ot_cost)
        total = total + weights.circumplex_ot * ot
    intensity = None
    if au_intensity is not None and weights.au_intensity > 0:
        intensity = au_intensity_loss(z_logits, au_intensity.to(z_logits.device), weights.au_intensity_gap)
        total = total + weights.au_intensity * intensity
    plateau = None
    if weights.presence_plateau > 0 and len(c_target):
        if head is None:
            raise ValueError("loss.presence_plateau needs the head (z -> class logits)")
        plateau = plateau_term(head, c_z, c_target, signs, weights.plateau_width, weights.active_threshold,
                               torch.rand_like(c_z))
        total = total + weights.presence_plateau * plateau
    return LossOutput(total, ce, bce, sens, inv, maps, ot, intensity, plateau)
