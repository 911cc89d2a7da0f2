"""The AU-token gate: an inactive AU cannot be named.

At every decoding step the logit of each AU token ``<AUk>`` gets β·min(z_k − ½, 0): nothing when
the reasoner sees the AU (z_k ≥ ½), a penalty growing to −β/2 as z_k → 0 (the paper's gate). The
default β = ∞ makes the guarantee exact: the token of an AU with z_k < ½ is never chosen, and
:class:`NameGuardLogitsProcessor` extends that to every spelling of the AU in the text (a backbone
could otherwise write "AU4" or "brow lowerer" with ordinary tokens). ``constrained`` goes further
(our step beyond the paper): only the AUs in each sample's allowed set (the invoked AUs) may be
named at all.

Rows of ``scores`` are samples (or samples × beams, in order); ``z`` is expanded to match, so the
processor works batched and with left padding (padding changes positions, not rows).
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessor


def gate_bias(z: torch.Tensor, beta: float | None) -> torch.Tensor:
    """β·min(z − ½, 0) per AU; β = None or inf (the verbalizer's default) is the hard limit: −inf
    below ½, 0 from ½ up — with any finite β an AU at z = ½ − δ keeps a penalty of only β·δ, so a
    confident LM could still name it."""
    shortfall = torch.clamp(z.float() - 0.5, max=0.0)
    if beta is None or beta == float("inf"):
        return torch.where(shortfall < 0, torch.full_like(shortfall, float("-inf")), torch.zeros_like(shortfall))
    return beta * shortfall


class AUGateLogitsProcessor(LogitsProcessor):
    """Adds β·min(z_k − ½, 0) to the logit of AU token k; ``allowed`` (bool [B, K]) additionally
    masks every AU token outside a sample's allowed set to −inf (the constrained mode)."""

    def __init__(self, au_token_ids: list[int], z: torch.Tensor, beta: float | None = None,
                 allowed: torch.Tensor | None = None):
        if z.dim() != 2 or z.shape[1] != len(au_token_ids):
            raise ValueError(f"z must be [B, {len(au_token_ids)}], got {tuple(z.shape)}")
        self.ids = torch.as_tensor(au_token_ids, dtype=torch.long)
        self.bias = gate_bias(z, beta)  # [B, K]
        if allowed is not None:
            self.bias = self.bias.masked_fill(~allowed.bool(), float("-inf"))

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        rows = scores.shape[0]
        bias = self.bias.to(scores.device)
        if rows != bias.shape[0]:  # beams / num_return_sequences: each sample's rows are contiguous
            bias = bias.repeat_interleave(rows // bias.shape[0], dim=0)
        scores = scores.clone()
        scores[:, self.ids.to(scores.device)] += bias.to(scores.dtype)
        return scores


class NameGuardLogitsProcessor(LogitsProcessor):
    """The gate at the level of the text: the token greedy decoding picks never makes the decoded
    rationale name an AU outside the row's allowed set, however it is spelled — the AU token
    ``<AU4>``, plain ``AU4`` / ``AU 4``, the FACS name ("brow lowerer"), or a bare number continuing
    an AU list (the "1" of "AU6, 1") — as read by the one parser, :func:`facr.au.extract`, that the
    audit reads it with.

    The AU-token bias alone cannot promise this: a backbone can spell an AU with ordinary tokens.
    For each row, the current best token is checked by decoding the row with it; a token that
    would name a disallowed AU is set to −inf and the next best is checked (at most ``max_tries``,
    then the row ends with EOS). Exact for greedy decoding, which the verbalizer uses; it must run
    last among the processors (``generate`` appends custom processors after its own), so the
    token it approves is the one chosen.
    """

    def __init__(self, tokenizer, allowed: list[set[int]], max_tries: int = 64):
        self.tokenizer = tokenizer
        self.allowed = [frozenset(a) for a in allowed]
        self.stop = {t for t in (tokenizer.eos_token_id, tokenizer.pad_token_id) if t is not None}
        self.max_tries = max_tries

    def names(self, ids: list[int]) -> set[int]:
        from facr.au import extract

        return set(extract(self.tokenizer.decode(ids, skip_special_tokens=True)))

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        rows = scores.shape[0]
        per = rows // len(self.allowed)
        scores = scores.clone()
        for b in range(rows):
            prefix = input_ids[b].tolist()
            if self.stop & set(prefix):  # finished rows only pad from here on
                continue
            allowed = self.allowed[b // per]
            for _ in range(self.max_tries):
                cand = int(scores[b].argmax())
                if cand in self.stop or self.names(prefix + [cand]) <= allowed:
                    break
                scores[b, cand] = float("-inf")
            else:  # nothing acceptable near the top: end the rationale here
                eos = self.tokenizer.eos_token_id
                scores[b] = float("-inf")
                scores[b, eos if eos is not None else next(iter(self.stop))] = 0.0
        return scores
