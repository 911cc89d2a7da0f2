"""One yardstick for every reasoner: graph-causal agreement against Pa(stated emotion) and Pa(label),
unsigned and signed, PSPI agreement, active-AU precision / recall over the coded AUs — the same
numbers whether the AUs were invoked by FACR, written in a rationale, or named by another model's
text. Every expected value below is counted by hand from the inputs written next to it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from facr.audit.evaluate import Evaluation
from facr.audit.external import NamedSample, summarize_named
from facr.audit.metrics import SET_KEYS, Explanation
from facr.audit.rationale import RationaleRows, generate_rows, intervention_rows, score_rationales
from facr.graph import graph_from_edges, save_graph

AUS = ["AU1", "AU4", "AU6", "AU12"]
CLASSES = ["happiness", "sadness"]
# K x C: AU6, AU12 raise happiness; AU1, AU4 raise sadness, AU12 lowers it (an inhibitory edge)
SIGNS = np.array([[0, 1], [0, 1], [1, 0], [1, -1]])
EDGES = [("AU6", "happiness", 1), ("AU12", "happiness", 1), ("AU1", "sadness", 1), ("AU4", "sadness", 1),
         ("AU12", "sadness", -1)]


def _hand_evaluation() -> Evaluation:
    """Two faces, both labelled sadness, with hand-set effects Δ = ŷ − ŷ^{do(z_k = 0)} ([N, K, C]).

    Face 0 predicts happiness (logits 3 > 1); Δ_happiness = (0.1, 0, 2.0, −1.5): the top-2 invoked AUs
    are AU6 and AU12, and AU12 moves happiness *against* its + edge. Δ_sadness = (0, 0, 0, −0.3).
    AU12 is not coded on face 0; AU6 is its only active AU.
    Face 1 predicts sadness (0 < 2); Δ_sadness = (1.0, 0.5, 0.05, 0.8): the top-3 are AU1, AU12, AU4, and
    AU12 raises sadness against its − edge. Every AU coded; AU1 and AU12 active.
    """
    delta = np.zeros((2, 4, 2), dtype=np.float32)
    delta[0, :, 0] = [0.1, 0.0, 2.0, -1.5]
    delta[0, :, 1] = [0.0, 0.0, 0.0, -0.3]
    delta[1, :, 0] = [0.0, 0.0, 0.05, 0.0]
    delta[1, :, 1] = [1.0, 0.5, 0.05, 0.8]
    logits = np.array([[3.0, 1.0], [0.0, 2.0]], dtype=np.float32)
    mask = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=np.float32)
    targets = np.array([[0, 0, 1, 1], [1, 0, 0, 1]], dtype=np.float32)  # face 0's AU12 "present" but uncoded
    return Evaluation(CLASSES, AUS, np.array([1, 1]), logits, logits[:, None, :] - delta,
                      np.full((2, 4), 0.7, dtype=np.float32), targets, mask, np.array(["s0", "s1"], dtype=object),
                      SIGNS)


# Hand counts for _hand_evaluation (invoked: face 0 {AU6, AU12}, face 1 {AU1, AU12, AU4}):
HAND = {
    "graph_causal_agreement": (2 / 2 + 3 / 3) / 2,  # every parent of the predicted class invoked
    "graph_causal_agreement_signed": (1 / 2 + 2 / 3) / 2,  # AU12 moves against its edge on both faces
    "graph_causal_agreement_label": (1 / 3 + 3 / 3) / 2,  # face 0 names only AU12 of Pa(sadness)
    "graph_causal_agreement_label_signed": (1 / 3 + 2 / 3) / 2,  # on face 0, −0.3 on a − edge moves sadness its way
    "active_au_precision": (1 / 1 + 2 / 3) / 2,  # face 0: the uncoded AU12 is not judged
    "active_au_recall": (1 / 1 + 2 / 2) / 2,
    "aus_per_frame": (2 + 3) / 2,
}


def test_signed_agreement_drops_a_parent_that_moves_the_class_against_its_edge():
    m = _hand_evaluation().summarize()
    for key, value in HAND.items():
        assert m[key] == pytest.approx(value), key
    assert m["graph_causal_agreement_signed"] < m["graph_causal_agreement"]  # the unsigned figure counts AU12 anyway
    assert m["chance"]["graph_causal_agreement"] == pytest.approx((2 / 4 + 3 / 4) / 2)  # |named| / K
    assert m["chance"]["active_au_precision"] == pytest.approx((1 / 3 + 2 / 4) / 2)  # |active| / |coded|
    # per class: the decisions for happiness are face 0's, for sadness face 1's
    assert m["per_class"]["happiness"]["graph_causal_agreement_signed"] == pytest.approx(1 / 2)
    assert m["per_class"]["sadness"]["graph_causal_agreement_signed"] == pytest.approx(2 / 3)
    assert m["pspi_agreement"] is None and m["pspi_agreement_signed"] is None  # nothing stated pain


def test_precision_ignores_aus_the_dataset_does_not_code():
    ev = _hand_evaluation()
    m = ev.summarize()
    # face 0 invokes AU6 (coded, active) and AU12 (uncoded): precision 1/1, not 1/2
    assert m["per_class"]["happiness"]["active_au_precision"] == 1.0
    # a face that codes nothing: precision and recall undefined, not 0
    ev.au_mask[0] = 0
    assert ev.summarize()["per_class"]["happiness"]["active_au_precision"] is None
    assert ev.summarize()["active_au_precision"] == pytest.approx(2 / 3)


def test_pspi_agreement_signed_counts_only_pspi_aus_that_raise_pain():
    aus = ["AU4", "AU6", "AU7", "AU9", "AU10", "AU43", "AU12"]
    signs = np.zeros((7, 2), dtype=int)
    signs[[0, 1], 1] = 1  # Pa(pain) = {AU4, AU6}
    delta = np.zeros((1, 7, 2), dtype=np.float32)
    delta[0, :, 1] = [1.0, -2.0, 0.1, 0.0, 0.0, 0.0, 0.5]  # invoked: AU6 (|−2|), AU4 (1); AU6 lowers pain
    logits = np.array([[0.0, 5.0]], dtype=np.float32)
    ev = Evaluation(["no_pain", "pain"], aus, np.array([1]), logits, logits[:, None, :] - delta,
                    np.zeros((1, 7)), np.zeros((1, 7)), np.zeros((1, 7)), np.array(["s"], dtype=object), signs)
    m = ev.summarize()
    assert m["pspi_agreement"] == pytest.approx(2 / 6) and m["pspi_agreement_signed"] == pytest.approx(1 / 6)
    assert m["graph_causal_agreement"] == 1.0 and m["graph_causal_agreement_signed"] == 0.5


def _named_like_the_evaluation() -> list[NamedSample]:
    """What a text-only reasoner would give if it named exactly FACR's invoked AUs on the same faces."""
    return [NamedSample(["AU6", "AU12"], "happiness", "sadness", active={"AU6"}, coded={"AU1", "AU4", "AU6"},
                        key="f0", subject="s0"),
            NamedSample(["AU1", "AU12", "AU4"], "sadness", "sadness", active={"AU1", "AU12"}, coded=set(AUS),
                        key="f1", subject="s1")]


def test_invoked_sets_text_named_sets_and_rationales_get_the_same_numbers():
    ev = _hand_evaluation()
    facr = ev.summarize()
    graph = graph_from_edges("hand", EDGES, classes=CLASSES, aus=AUS)
    text = summarize_named(_named_like_the_evaluation(), graph, ci=False)
    # the factual rationales name the invoked AUs; the do() rows are not read by the set figures
    rows = RationaleRows(torch.full((10, 4), 0.7), ["happiness"] * 5 + ["sadness"] * 5,
                         torch.ones(10, 4, dtype=torch.bool), np.repeat(np.arange(2), 5), np.tile(np.arange(-1, 4), 2))
    texts = ["the face shows AU6 and AU12."] + [""] * 4 + ["AU1, AU12 and the brow lowerer."] + [""] * 4
    rationale = score_rationales(texts, rows, AUS, CLASSES, SIGNS, [set(), set()], ev.explanations(),
                                 np.array(["s0", "s1"]), ci=False)
    for key in ("graph_causal_agreement", "graph_causal_agreement_label", "active_au_precision", "active_au_recall",
                "aus_per_frame"):
        assert facr[key] == pytest.approx(HAND[key]), key
        assert text[key] == pytest.approx(HAND[key]), key
        assert rationale[key] == pytest.approx(HAND[key]), key
    assert text["chance"]["graph_causal_agreement"] == pytest.approx(facr["chance"]["graph_causal_agreement"])
    # the rationale speaks for a reasoner with a do(): its signed figure reads the same effects
    for key in ("graph_causal_agreement_signed", "graph_causal_agreement_label_signed"):
        assert rationale[key] == pytest.approx(HAND[key]), key
        assert text[key] is None  # a text-only reasoner has no effect to read a sign from


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_agreement_with_the_stated_emotion_and_with_the_label_differ_as_counted(tmp_path, run_cli):
    graph = tmp_path / "g.json"
    save_graph(graph_from_edges("hand", [("AU6", "happiness", 1), ("AU12", "happiness", 1), ("AU1", "sadness", 1),
                                         ("AU4", "sadness", 1), ("AU15", "sadness", 1)]), graph)
    gen = _jsonl(tmp_path / "g.jsonl", [
        # labelled happy, says sad, names AU1, AU4, AU12: 2/3 of Pa(sadness), 1/2 of Pa(happiness)
        {"image": "a.png", "emotion": "happiness", "aus": ["AU12"], "output": "AU1, AU4 and AU12",
         "emotion_output": "The face conveys sadness."},
        # labelled sad, says sad, names AU15: 1/3 against both
        {"image": "b.png", "emotion": "sadness", "aus": ["AU15"], "output": "AU15",
         "emotion_output": "The face conveys sadness."},
        # labelled happy, says happy, names AU6, AU12: 1 against both
        {"image": "c.png", "emotion": "happiness", "aus": ["AU6"], "output": "the cheek raiser and AU12",
         "emotion_output": "The face conveys happiness."},
        # labelled sad, asked no emotion, names AU4: no stated emotion to score against; 1/3 of Pa(sadness)
        {"image": "d.png", "emotion": "sadness", "aus": ["AU4"], "output": "AU4"},
    ])
    code, out, err = run_cli("audit", "--model", "emola", "--generations", gen, "--graph", graph, "--json")
    assert code == 0, err
    m = json.loads(out)
    assert m["graph_causal_agreement"] == pytest.approx((2 / 3 + 1 / 3 + 1) / 3)
    assert m["graph_causal_agreement_label"] == pytest.approx((1 / 2 + 1 / 3 + 1 + 1 / 3) / 4)
    assert m["graph_causal_agreement_signed"] is None and m["graph_causal_agreement_label_signed"] is None
    assert m["active_au_precision"] == pytest.approx((1 / 3 + 1 + 1 / 2 + 1) / 4)
    assert m["emotion_accuracy"] == pytest.approx(2 / 3)
    # per class: grouped by the stated emotion (as FACR's by its prediction), else the label
    sad = m["per_class"]["sadness"]
    assert (sad["n_samples"], sad["n_stated"], sad["n_labelled"]) == (3, 2, 2)
    assert sad["graph_causal_agreement"] == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert sad["graph_causal_agreement_label"] == pytest.approx((1 / 2 + 1 / 3 + 1 / 3) / 3)


# ------------------------------------------------------------------ rationale rows on a reasoner whose do() flips
R_AUS = ["AU4", "AU6", "AU12"]
R_SIGNS = torch.tensor([[0, 1], [1, 0], [1, 0]])  # AU6, AU12 -> happiness; AU4 -> sadness


def _flipping_head(z: torch.Tensor) -> torch.Tensor:
    """happiness = z_AU6 + 2·z_AU12, sadness = 1 + z_AU4: on z = (0.2, 0.3, 0.9) happiness wins
    (2.1 vs 1.2) and do(AU12 = 0) flips it to sadness (0.3 vs 1.2); do(AU4 = 0), do(AU6 = 0) do not."""
    w = torch.tensor([[0.0, 1.0, 2.0], [1.0, 0.0, 0.0]])
    return z @ w.T + torch.tensor([0.0, 1.0])


class _Echo:
    """A verbalizer stand-in: writes the emotion it is asked to explain and the AUs its z shows (z ≥ ½)."""

    def __init__(self):
        self.asked = []

    def generate(self, z, emotions, mode="gated", plans=None):
        self.asked.extend(emotions)
        return [f"{e}: " + " and ".join(a for a, v in zip(R_AUS, row) if v >= 0.5)
                for e, row in zip(emotions, z.tolist())]


def test_rationale_rows_carry_the_flipped_emotion():
    rows = intervention_rows(_flipping_head, torch.tensor([[0.2, 0.3, 0.9]]), ["happiness", "sadness"], R_SIGNS, R_AUS)
    # factual, do(AU4 = 0), do(AU6 = 0), do(AU12 = 0)
    assert rows.emotions == ["happiness", "happiness", "happiness", "sadness"]
    # each row's allowed set is what the head invokes for the emotion that row states
    assert rows.allowed[0].tolist() == [False, True, True]  # top-2 |Δ_happiness|: AU12 (1.8), AU6 (0.3)
    assert rows.allowed[3].tolist() == [True, False, False]  # sadness: its one parent AU4
    echo = _Echo()
    texts = generate_rows(echo, rows, "gated")
    assert sorted(echo.asked) == sorted(rows.emotions)  # the verbalizer was asked for "sadness" once
    assert texts == ["happiness: AU12", "happiness: AU12", "happiness: AU12", "sadness: "]
    m = score_rationales(texts, rows, R_AUS, ["happiness", "sadness"], R_SIGNS.numpy(), [{"AU12"}],
                         [Explanation(set(), "happiness", "happiness")], np.array(["s"]), ci=False)
    example = m["examples"][0]
    assert example["intervention"] == "do(AU12 = 0)" and example["emotion"] == "happiness"
    assert example["emotion_after"] == "sadness" and example["rationale_after"] == "sadness: "
    # Pa(happiness) = {AU6, AU12}: AU12 named then dropped; AU6 never named
    assert m["rationale_sensitivity"] == 0.5


# ------------------------------------------------------------------ the keys, at the top level of every audit
class _OneRuleLLM:
    """A frozen-'LLM' stub: states happiness and names AU12 whatever the evidence."""

    def describe(self):
        return "one rule"

    def __call__(self, conversations, progress=False):
        return ["It is happiness, shown by AU12." for _ in conversations]


def test_every_audit_json_holds_the_yardstick_keys_at_the_top_level(reasoner, trained_verbalizer, tmp_path, run_cli,
                                                                    monkeypatch):
    import facr.audit.external as ext
    from facr.data.formats import load
    from facr.external.generations import record_key

    data, run = reasoner
    verbalizer, _ = trained_verbalizer
    records = [r for r in load("synth", data, decode=False).records if r.split == "test"][:3]
    gen = _jsonl(tmp_path / "g.jsonl", [{"image": record_key(r, data), "output": "AU12"} for r in records])
    monkeypatch.setattr(ext, "make_chat", lambda options: _OneRuleLLM())
    audits = {
        "reasoner": ("--model", run, "--no-oracle", "--limit", 6),
        "rationale": ("--model", verbalizer, "--rationale", "--limit", 2, "--mode", "gated"),
        "emola": ("--model", "emola", "--generations", gen),
        "frozen-llm": ("--model", "frozen-llm", "--limit", 3),
    }
    for name, argv in audits.items():
        code, out, err = run_cli("audit", *argv, "--data", data, "--json")
        assert code == 0, (name, err)
        m = json.loads(out)
        for key in (*SET_KEYS, "aus_per_frame"):
            assert key in m, (name, key)
        defined = (m["graph_causal_agreement"], m["graph_causal_agreement_signed"])
        if None not in defined:  # a parent counts signed only if it counts unsigned
            assert defined[1] <= defined[0] + 1e-12, name
        if name in ("emola", "frozen-llm"):
            assert m["graph_causal_agreement_signed"] is None and m["signed_agreement_note"], name
    # the frozen LLM's headline figures are the paper's (against G); the self-consistency ones say so
    assert {"simulatability_sensitivity", "self_simulatability_sensitivity"} <= set(m)
