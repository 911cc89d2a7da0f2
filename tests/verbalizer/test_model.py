"""The verbalizer on tiny from-config Qwen3 / Gemma3 backbones: the gate, the trainable set, batching."""

from __future__ import annotations

import pytest
import torch
from transformers import LogitsProcessor

from facr.testing import tiny_backbone
from facr.verbalizer.gating import AUGateLogitsProcessor, gate_bias
from facr.verbalizer.model import Verbalizer, VerbalizerConfig

AUS = ["AU1", "AU2", "AU4", "AU6", "AU7", "AU12", "AU15", "AU25"]


def _verbalizer(family="qwen3", **over) -> Verbalizer:
    lm, tok = tiny_backbone(family)
    cfg = VerbalizerConfig(backbone=f"tiny-{family}", aus=AUS, classes=["happiness", "sadness"], n_prompt=4,
                           prompt_hidden=32, max_new_tokens=10, **over)
    return Verbalizer(cfg, lm, tok)


class _EagerToNameAUs(LogitsProcessor):
    """Stands in for a trained LM that wants to name AUs: +50 on every AU token."""

    def __init__(self, ids):
        self.ids = torch.as_tensor(ids)

    def __call__(self, input_ids, scores):
        scores = scores.clone()
        scores[:, self.ids] += 50.0
        return scores


def test_gate_bias_is_the_papers_formula_and_infinite_beta_is_a_hard_gate():
    z = torch.tensor([[0.2, 0.5, 0.9, 0.499]])
    assert gate_bias(z, 10.0)[0].tolist() == pytest.approx([-3.0, 0.0, 0.0, -0.01], abs=1e-5)
    assert gate_bias(z, float("inf")).tolist() == [[float("-inf"), 0.0, 0.0, float("-inf")]]
    # batched with beams: each sample's bias repeats over its rows
    proc = AUGateLogitsProcessor([5, 7], torch.tensor([[0.1, 0.9], [0.9, 0.1]]), beta=2.0)
    out = proc(torch.zeros(4, 1, dtype=torch.long), torch.zeros(4, 10))
    assert out[:, 5].tolist() == pytest.approx([-0.8, -0.8, 0.0, 0.0])
    assert out[:, 7].tolist() == pytest.approx([0.0, 0.0, -0.8, -0.8])
    assert out[:, [0, 1, 2, 3, 4, 6, 8, 9]].abs().sum() == 0  # other tokens untouched


def test_gated_verbalizer_never_names_an_inactive_au_over_many_random_z():
    torch.manual_seed(0)
    v = _verbalizer()
    eager = _EagerToNameAUs(v.au_token_ids)
    z = torch.rand(48, len(AUS))
    emotions = ["happiness", "sadness"] * 24
    gated = v.generate(z, emotions, extra_processors=[eager])
    ungated = v.generate(z, emotions, mode="ungated", extra_processors=[eager])
    named_gated = [v.named_aus(t) for t in gated]
    assert sum(len(n) for n in named_gated) > 48  # the eager LM does name AUs ...
    for row, named in zip(z, named_gated):  # ... but only active ones
        assert all(row[AUS.index(a)] >= 0.5 for a in named), named
    inactive_ungated = sum(row[AUS.index(a)] < 0.5 for row, t in zip(z, ungated) for a in v.named_aus(t))
    assert inactive_ungated > 10  # without the gate the same LM names inactive AUs


def test_constrained_mode_names_only_the_allowed_aus():
    v = _verbalizer()
    z = torch.ones(4, len(AUS))  # everything active: only the allowed set limits naming
    allowed = torch.zeros(4, len(AUS), dtype=torch.bool)
    allowed[:, [AUS.index("AU6"), AUS.index("AU12")]] = True
    texts = v.generate(z, ["happiness"] * 4, mode="constrained", allowed=allowed,
                       extra_processors=[_EagerToNameAUs(v.au_token_ids)])
    named = {a for t in texts for a in v.named_aus(t)}
    assert named and named <= {"AU6", "AU12"}
    with pytest.raises(ValueError, match="constrained mode needs"):
        v.generate(z, ["happiness"] * 4, mode="constrained")


@pytest.mark.parametrize("family", ["qwen3", "gemma3"])
def test_a_training_step_changes_only_the_soft_prompt_and_the_au_rows(family):
    torch.manual_seed(0)
    v = _verbalizer(family)
    assert set(v.trainable_parameter_names()) <= {"lm.model.embed_tokens.weight", "lm.lm_head.weight",
                                                  "prompt.net.0.weight", "prompt.net.0.bias",
                                                  "prompt.net.2.weight", "prompt.net.2.bias"}
    before = {n: p.detach().clone() for n, p in v.named_parameters()}
    opt = torch.optim.Adam([p for p in v.parameters() if p.requires_grad], lr=1e-2)
    ids, att, lab = v.instruction_batch(["happiness", "sadness"], ["the face shows <AU6> and <AU12>", "<AU15> <AU4>"])
    z = torch.rand(2, len(AUS))
    for _ in range(2):
        loss = v(z, ids, att, lab).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    changed = {n for n, p in v.named_parameters() if not torch.equal(p, before[n])}
    assert {n for n in changed if n.startswith("prompt.")} == {n for n in before if n.startswith("prompt.")}
    lm_changed = changed - {n for n in changed if n.startswith("prompt.")}
    assert lm_changed == {"lm.model.embed_tokens.weight"}  # the shared vocabulary tensor, and in it ...
    w, w0 = v.lm.get_input_embeddings().weight, before["lm.model.embed_tokens.weight"]
    rows = torch.nonzero((w != w0).any(dim=1)).flatten().tolist()
    assert set(rows) <= set(v.au_token_ids) and rows  # ... only AU rows moved


def test_left_padding_leaves_each_rationale_unchanged():
    torch.manual_seed(1)
    v = _verbalizer()
    z = torch.rand(2, len(AUS))
    alone = v.generate(z[:1], ["happiness"])
    batched = v.generate(z, ["happiness", "no_pain sadness"])  # the second instruction is longer: row 0 is padded
    assert batched[0] == alone[0]
