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


class _Wilful(LogitsProcessor):
    """Stands in for an LM that wants to name every AU, to stop at once, to write digits and full
    stops, and to state another emotion: +50 on all of those tokens."""

    def __init__(self, v):
        tok = v.tokenizer
        words = [w for w in ("sadness", "anger", "brow", "lowerer", ".", "1", "2", "9", "AU") if w in tok.get_vocab()]
        self.au = torch.as_tensor(v.au_token_ids)
        self.other = torch.as_tensor([tok.eos_token_id] + tok.convert_tokens_to_ids(words))

    def __call__(self, input_ids, scores):
        scores = scores.clone()
        scores[:, self.au] += 50.0
        scores[:, self.other] += 45.0
        return scores


def _random_plans(z, seed=0):
    import random

    from facr.verbalizer.plan import RationalePlan

    rng = random.Random(seed)
    plans = []
    for row in z:
        shown = [a for a, v in zip(AUS, row.tolist()) if v >= 0.5]
        rng.shuffle(shown)
        aus = shown[:rng.randint(0, 4)]
        plans.append(RationalePlan(aus, rng.choice(["happiness", "sadness"]), round(rng.random(), 2),
                                   against=[a for a in aus if rng.random() < 0.3]))  # polarity: some count against
    return plans


@pytest.mark.parametrize("family", ["qwen3", "gemma3"])
def test_gated_decoding_names_exactly_the_plan_however_much_the_lm_wants_otherwise(family):
    """The coverage guarantee: over many random z and plans, on an LM eager to name every AU, to stop
    early, to write numbers and full stops and another emotion, every gated rationale names each
    AU of T exactly once in FACS form, nothing else, states ĉ with its probability and stops (the
    well-formedness checker passes); the same LM ungated names inactive AUs and breaks the rules."""
    from facr import au as au_vocab
    from facr.verbalizer.wellformed import check_rationale

    torch.manual_seed(0)
    v = _verbalizer(family)
    wilful = _Wilful(v)
    z = torch.rand(64, len(AUS))
    plans = _random_plans(z)
    assert sum(len(p.aus) for p in plans) > 64
    texts = v.generate(z, [p.emotion for p in plans], plans=plans, extra_processors=[wilful])
    for p, text in zip(plans, texts):
        assert check_rationale(text, p.aus, p.emotion) == [], (p, text)
        mentioned = [m.number for m in au_vocab.mentions(text)]
        assert mentioned == [au_vocab.parse(a) for a in p.order], (p, text)  # those against ĉ first
        assert text.endswith(f"{p.emotion} (p = {p.probability:.2f}).")
        if p.against:  # never said to point to ĉ: a contrast clause, or "speak(s) against"
            assert text.startswith(("Although", "Despite", "Even with")) or "against" in text, (p, text)
        else:
            assert not text.startswith(("Although", "Despite", "Even with")) and "against" not in text, (p, text)
    assert sum(bool(p.against) for p in plans) > 8 and sum(p.against != p.aus and bool(p.against) for p in plans) > 4
    ungated = v.generate(z, [p.emotion for p in plans], mode="ungated", extra_processors=[wilful])
    assert sum(bool(check_rationale(t, p.aus, p.emotion)) for p, t in zip(plans, ungated)) > 32
    inactive = sum(row[AUS.index(a)] < 0.5 for row, t in zip(z, ungated) for a in v.named_aus(t) if a in AUS)
    soft = v.generate(z, [p.emotion for p in plans], mode="soft", extra_processors=[wilful])
    inactive_soft = sum(row[AUS.index(a)] < 0.5 for row, t in zip(z, soft) for a in v.named_aus(t) if a in AUS)
    assert inactive > 10 and inactive_soft < inactive  # the soft gate ranks an active AU token above an inactive one


def test_the_hard_gate_holds_on_the_plan_too():
    """A plan that lists an AU the latent does not show (z < ½) is realised without it."""
    from facr.verbalizer.plan import RationalePlan

    v = _verbalizer()
    z = torch.ones(2, len(AUS))
    z[:, AUS.index("AU12")] = 0.2
    plans = [RationalePlan(["AU12", "AU6"], "happiness", 0.9)] * 2
    texts = v.generate(z, ["happiness"] * 2, plans=plans, extra_processors=[_Wilful(v)])
    assert all(v.named_aus(t) == ["AU6"] for t in texts), texts
    with pytest.raises(ValueError, match="one RationalePlan per row"):
        v.generate(z, ["happiness"] * 2)


@pytest.mark.parametrize("family", ["qwen3", "gemma3"])
def test_a_training_step_changes_only_the_soft_prompt_and_the_au_rows(family):
    torch.manual_seed(0)
    v = _verbalizer(family)
    names = set(v.trainable_parameter_names())
    assert names - {"au_out"} == {"au_in", "prompt.net.0.weight", "prompt.net.0.bias", "prompt.net.2.weight",
                                  "prompt.net.2.bias"}
    assert ("au_out" in names) == (not v.tied)
    assert sum(p.numel() for p in v.parameters() if p.requires_grad) < 0.5 * sum(p.numel() for p in v.lm.parameters())
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
    assert "au_in" in changed and not {n for n in changed if n.startswith("lm.")}  # the backbone is untouched
    v.sync_rows()  # decoding reads the rows from the vocabulary: only the AU rows differ there
    w, w0 = v.lm.get_input_embeddings().weight, before["lm.model.embed_tokens.weight"]
    rows = torch.nonzero((w != w0).any(dim=1)).flatten().tolist()
    assert set(rows) == set(v.au_token_ids)


@pytest.mark.parametrize("family", ["qwen3", "gemma3"])
def test_the_training_loss_is_the_backbones_own_cross_entropy(family):
    """The loss computed on the target positions only, AU columns from the trainable rows, equals the
    backbone's own loss over the full logits (embedding scale and tied or untied head included)."""
    torch.manual_seed(0)
    v = _verbalizer(family)
    with torch.no_grad():
        v.au_in.add_(torch.randn_like(v.au_in))
        if v.au_out is not None:
            v.au_out.add_(torch.randn_like(v.au_out))
    v.sync_rows()
    ids, att, lab = v.instruction_batch(["happiness", "sadness"], ["the face shows <AU6> and <AU12>", "<AU15> <AU4>"])
    z = torch.rand(2, len(AUS))
    ours = v(z, ids, att, lab).loss
    embeds, mask = v.embed(z, ids, att)
    full_labels = torch.cat([torch.full((2, v.config.n_prompt), -100), lab], dim=1)
    theirs = v.lm(inputs_embeds=embeds, attention_mask=mask, labels=full_labels).loss
    assert float(ours.detach()) == pytest.approx(float(theirs.detach()), rel=1e-4)


def test_left_padding_leaves_each_rationale_unchanged():
    torch.manual_seed(1)
    v = _verbalizer()
    z = torch.rand(2, len(AUS))
    plans = _random_plans(z, seed=3)
    alone = v.generate(z[:1], ["happiness"], plans=plans[:1])
    batched = v.generate(z, ["happiness", "no_pain sadness"], plans=plans)  # the second is longer: row 0 is padded
    assert batched[0] == alone[0]


class _Teacher(LogitsProcessor):
    """An LM that has learnt its targets perfectly: +100 on the next token of each row's target ids."""

    def __init__(self, targets):
        self.targets = targets

    def __call__(self, input_ids, scores):
        scores = scores.clone()
        for b, target in enumerate(self.targets):
            t = input_ids.shape[1]
            if t < len(target):
                scores[b, target[t]] += 100.0
        return scores


@pytest.mark.parametrize("family", ["qwen3", "gemma3"])
def test_every_training_target_is_what_gated_decoding_emits_when_the_lm_follows_it(family):
    """Training and decoding agree token for token: an LM that wants exactly a plan's target ids
    (any template) gets them from the gated decoder, and the text is the template's."""
    from facr.verbalizer.plan import TEMPLATES

    torch.manual_seed(0)
    v = _verbalizer(family)
    z = torch.rand(16, len(AUS))
    plans = _random_plans(z, seed=5)
    targets = [v.plan_ids(p, index=i) for i, p in enumerate(plans)]
    texts = v.generate(z, [p.emotion for p in plans], plans=plans, extra_processors=[_Teacher(targets)])
    assert texts == [p.text(index=i) for i, p in enumerate(plans)]
    assert len({i % len(TEMPLATES) for i in range(16)}) == len(TEMPLATES)


def test_the_phrase_grammar_says_nothing_of_its_own_and_every_realisation_is_well_formed():
    """The LM's phrases link evidence to a conclusion but state no emotion, name no AU, claim no
    movement and hold no number; every realisation of every frame, for T of none, one or three AUs,
    is one well-formed sentence, and the realisations differ."""
    import re

    from facr import au as au_vocab
    from facr.external.generations import _EMOTION_WORDS
    from facr.verbalizer.plan import (
        AFTER_CONTRAST,
        AGAINST_FRAMES,
        CONTRASTS,
        FRAMES,
        LAST_SEPARATOR,
        NONE_PHRASES,
        SEPARATOR,
        TEMPLATES,
        RationalePlan,
    )
    from facr.verbalizer.wellformed import check_rationale

    frames = FRAMES + AFTER_CONTRAST + AGAINST_FRAMES
    phrases = [o for o, _ in frames] + [c for _, cs in frames for pair in cs for c in pair]
    phrases += [o for o, _ in CONTRASTS] + [j for _, pair in CONTRASTS for j in pair]
    phrases += [*NONE_PHRASES, SEPARATOR, LAST_SEPARATOR]
    words = {w.lower() for p in phrases for w in re.findall(r"[A-Za-z]+", p)}
    facs_words = {w for n in au_vocab.AUS for w in au_vocab.info(f"AU{n}").name.lower().split()}
    assert not words & set(_EMOTION_WORDS) and not words & facs_words and "au" not in words
    assert not any(re.search(r"[\d.!?()]", p) for p in phrases)
    for aus in ([], ["AU4"], ["AU1", "AU4", "AU15"]):
        texts = {RationalePlan(aus, "sadness", 0.87).text(index=i) for i in range(len(TEMPLATES))}
        assert len(texts) == (len(TEMPLATES) if aus else len(NONE_PHRASES))
        for t in texts:
            assert check_rationale(t, aus, "sadness") == [], t
            assert t[0].isupper() and t.endswith("sadness (p = 0.87).") and t.count(".") == 2, t
    assert RationalePlan(["AU4"], "sadness").text(index=4) == "AU4 (brow lowerer) is visible, which points to sadness."
    # polarity: the AUs against ĉ first, in a contrast clause; every wording well formed and distinct
    for aus, against in ((["AU12", "AU6", "AU4"], ["AU4"]), (["AU12", "AU4", "AU15"], ["AU4", "AU15"]),
                         (["AU4"], ["AU4"]), (["AU4", "AU15"], ["AU15", "AU4"])):
        plan = RationalePlan(aus, "happiness", 0.82, against=against)
        texts = {plan.text(index=i) for i in range(len(plan.realisations()))}
        assert len(texts) == len(plan.realisations()) >= 2
        for t in texts:
            assert check_rationale(t, aus, "happiness") == [], t
            assert t[0].isupper() and t.endswith("happiness (p = 0.82).") and t.count(".") == 2, t
            named = [f"AU{m.number}" for m in au_vocab.mentions(t)]
            assert named == plan.order and set(named[:len(plan.against)]) == set(against), t
    assert RationalePlan(["AU12", "AU6", "AU4"], "happiness", 0.82, against=["AU4"]).text(index=4) == (
        "Although AU4 (brow lowerer) is visible, AU12 (lip corner puller) and AU6 (cheek raiser) point to "
        "happiness (p = 0.82).")
    assert RationalePlan(["AU4"], "happiness", 0.41, against=["AU4"]).text(index=1) == (
        "AU4 (brow lowerer) speaks against happiness (p = 0.41).")


def test_a_faces_plan_names_the_invoked_aus_its_latent_shows_in_order_with_the_ones_against_marked():
    from facr.verbalizer.plan import RationalePlan

    z = {"AU4": 0.9, "AU6": 0.2, "AU12": 0.97, "AU25": 0.5}
    effects = {"AU4": -0.4, "AU6": 0.8, "AU12": 1.3}  # AU25 has no entry: Δ = 0
    plan = RationalePlan.for_face(["AU12", "AU6", "AU4", "AU25"], z, effects, "happiness", 0.88)
    assert plan.aus == ["AU12", "AU4", "AU25"]  # AU6 is invoked but z < ½: not said
    assert plan.against == ["AU4"] and plan.emotion == "happiness" and plan.probability == 0.88
    assert RationalePlan.for_face(["AU6"], z, effects, "sadness").aus == []
