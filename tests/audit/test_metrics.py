import numpy as np
import pytest
import torch

from facr.audit.metrics import (
    Explanation,
    counterfactual_pairs,
    invoked_aus,
    mean_defined,
    recognition,
    score_explanations,
)
from facr.causal import intervention_effects, pair_masks
from facr.losses import LossWeights, facr_loss

SIGNS = torch.tensor([[1, 0, 0], [1, 0, -1], [0, 1, 0], [0, 0, 0]])  # K=4, C=3 (class 2 has AU1 inhibitory)


def head_from(weight):
    w = torch.as_tensor(weight, dtype=torch.float32)
    return lambda z: z @ w.T


def test_sensitivity_and_invariance_fractions_by_hand():
    # linear head: Δ_kc = W_ck z_k
    head = head_from([[1.0, 0.02, 0.0, 0.5], [0.0, 0.0, 2.0, 0.0], [0.0, 0.3, 0.0, 0.0]])
    z = torch.tensor([[0.9, 0.8, 0.1, 0.5], [0.2, 0.9, 0.9, 0.1], [0.5, 0.5, 0.5, 0.5]])
    target = torch.tensor([0, 1, 2])
    counts = counterfactual_pairs(intervention_effects(head, z), SIGNS, target, z, epsilon=0.1)
    # sample0 c=0: parents AU0 (Δ=.9 ✓), AU1 (Δ=.016 ✗); irrelevant AU2 (0 ✓), AU3 (.25 ✗)
    # sample1 c=1: parent AU2 (Δ=1.8 ✓); irrelevant AU0, AU1, AU3 (all 0 ✓)
    # sample2 c=2: parent AU1 s=-1 (Δ=.15, s·Δ=-.15 ✗); irrelevant AU0, AU2, AU3 (0 ✓)
    assert counts.sens_pairs.tolist() == [2, 1, 1] and counts.sens_hits.tolist() == [1, 1, 0]
    assert counts.inv_pairs.tolist() == [2, 3, 3] and counts.inv_hits.tolist() == [1, 3, 3]
    assert counts.sensitivity == pytest.approx(2 / 4) and counts.invariance == pytest.approx(7 / 8)


def test_loss_terms_and_audit_metric_see_the_same_pairs_and_effects():
    torch.manual_seed(0)
    head = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    z_logits = torch.randn(16, 4)
    z = torch.sigmoid(z_logits)
    target = torch.randint(0, 3, (16,))
    effects = intervention_effects(head, z)
    w = LossWeights(gamma=0.3)
    loss = facr_loss(effects, z, z_logits, target, torch.zeros(16, 4), torch.ones(16, 4), SIGNS, w)
    audit = counterfactual_pairs(effects, SIGNS, target, z, epsilon=0.05, margin=0.0)
    # recompute both from the per-pair Δ and masks the one mechanism exposes
    masks = pair_masks(SIGNS, target, z)
    delta = effects.for_class(target)
    hinge = torch.relu(0.3 - masks.sign * delta)
    sens_per = [(hinge[b][masks.causal[b]]).mean() for b in range(16) if masks.causal[b].any()]
    inv_per = [(delta[b][masks.irrelevant[b]] ** 2).mean() for b in range(16) if masks.irrelevant[b].any()]
    assert loss.sens.item() == pytest.approx(torch.stack(sens_per).mean().item())
    assert loss.inv.item() == pytest.approx(torch.stack(inv_per).mean().item())
    assert audit.sens_pairs.sum() == int(masks.causal.sum())
    assert audit.inv_pairs.sum() == int(masks.irrelevant.sum())
    sens_hits = ((masks.sign * delta > 0) & masks.causal).sum().item()
    inv_hits = ((delta.abs() <= 0.05) & masks.irrelevant).sum().item()
    assert audit.sensitivity == pytest.approx(sens_hits / masks.causal.sum().item())
    assert audit.invariance == pytest.approx(inv_hits / masks.irrelevant.sum().item())


def test_invoked_aus_are_the_top_parent_count_by_effect_on_the_predicted_class():
    head = head_from([[3.0, 0.1, 2.0, 0.0], [0.0, 0.0, 0.0, 1.0], [0.0, 6.0, 0.0, 0.0]])
    z = torch.tensor([[1.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    # sample 0 predicts class 2 (logit 6 > 5.1): |Pa(2)| = 1 -> AU1; sample 1 predicts class 1: |Pa(1)| = 1 -> AU3
    assert invoked_aus(intervention_effects(head, z), SIGNS) == [[1], [3]]
    # forcing class 0 (|Pa| = 2): AU0 (3.0) then AU2 (2.0)
    assert invoked_aus(intervention_effects(head, z), SIGNS, torch.tensor([0, 0]))[0] == [0, 2]


def test_score_explanations_by_hand():
    parents = {"happiness": {"AU6": 1, "AU12": 1},
               "pain": {"AU4": 1, "AU6": 1, "AU7": 1, "AU9": 1, "AU10": 1, "AU43": 1}, "neutral": {}}
    s = score_explanations([
        Explanation({"AU6", "AU12"}, "happiness", "happiness", active={"AU12", "AU25"}),
        Explanation({"AU4", "AU7", "AU9"}, "pain", "happiness", active={"AU4"}),
        Explanation(set(), "neutral", None),
    ], parents, n_universe=10)
    v = s.values
    assert v["graph_causal_agreement"] == [1.0, 0.5, None]  # 2/2, 3/6, no parents
    assert v["graph_causal_agreement_label"] == [1.0, 0.0, None]  # sample 1 names neither AU6 nor AU12
    assert v["pspi_agreement"] == [None, 0.5, None]  # only the pain statement: {4, 7, 9} of the six
    assert v["active_au_precision"] == [0.5, pytest.approx(1 / 3), None]
    assert v["active_au_recall"] == [0.5, 1.0, None]
    assert s.n_named == [2, 3, 0]
    # no effects given: no signed figure anywhere
    assert all(x is None for k in ("graph_causal_agreement_signed", "pspi_agreement_signed") for x in v[k])
    # chance of naming n of 10 AUs at random: n / 10 where Pa is non-empty; precision |active| / |coded| (unknown)
    assert s.chance["graph_causal_agreement"] == [0.2, 0.3, None]
    assert s.chance["active_au_precision"] == [None, None, None]
    summary = s.summary()
    assert summary["graph_causal_agreement"] == 0.75 and summary["aus_per_frame"] == pytest.approx(5 / 3)
    assert mean_defined([None]) is None


def test_recognition_auc_is_undefined_for_a_single_class_subject():
    logits = np.array([[2.0, 0.0], [1.0, 0.5], [0.0, 1.0]])
    single = recognition(np.array([0, 0, 0]), logits, ["no_pain", "pain"])
    assert single["auc"] is None and single["accuracy"] == pytest.approx(2 / 3)
    both = recognition(np.array([0, 0, 1]), logits, ["no_pain", "pain"])
    assert both["auc"] == 1.0 and both["f1_positive"] == 1.0
    multi = recognition(np.array([0, 1, 2]), np.eye(3) * 3, ["a", "b", "c"])
    assert multi["accuracy"] == 1.0 and multi["macro_f1"] == 1.0 and multi["auc"] == 1.0


def test_au_detection_per_au_counts_only_coded_faces_and_averages_into_au_f1():
    from facr.audit.evaluate import au_detection, au_f1

    z = np.array([[0.9, 0.2, 0.7], [0.8, 0.6, 0.1], [0.1, 0.4, 0.2], [0.7, 0.9, 0.3]])
    targets = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [1, 1, 0]], dtype=float)
    mask = np.array([[1, 1, 1], [1, 1, 1], [1, 0, 1], [1, 1, 1]], dtype=float)  # face 2's AU2 is not coded
    rows = au_detection(z, targets, mask, ["AU1", "AU2", "AU4"])
    a1, a2, a4 = rows
    # AU1: called on faces 0, 1, 3; present on 0, 2, 3 -> tp 2, precision 2/3, recall 2/3
    assert (a1["n_coded"], a1["n_positive"], a1["n_called"]) == (4, 3, 3)
    assert a1["precision"] == pytest.approx(2 / 3) and a1["recall"] == pytest.approx(2 / 3)
    assert a1["f1"] == pytest.approx(2 / 3)
    # AU2: coded on 3 faces, present on 1 and 3, called on 1 and 3 -> perfect
    assert (a2["n_coded"], a2["n_positive"], a2["precision"], a2["recall"], a2["f1"]) == (3, 2, 1.0, 1.0, 1.0)
    # AU4: never present, called once: no recall, F1 0, and left out of the macro AU F1
    assert a4["recall"] is None and a4["precision"] == 0.0 and a4["f1"] == 0.0
    assert au_f1(z, targets, mask) == pytest.approx((2 / 3 + 1.0) / 2)


def test_sensitivity_over_the_parents_z_sees_leaves_out_absent_parents():
    """A linear head on a z that reads exactly the AUs drawn: do(z_k = 0) on an absent parent (z_k = 0) moves
    nothing, so the paper's cf_sensitivity (every parent) is 3/4 where cf_sensitivity_seen (z_k > ½) is 1, and
    3/4 is all the AU labels allow (cf_sensitivity_label_cap)."""
    from facr.audit.evaluate import Evaluation

    # two AUs, both parents (+) of class 1; face 0 shows AU0 only, face 1 shows both
    z = np.array([[1.0, 0.0], [1.0, 1.0]])
    w = np.array([[0.0, 1.0], [0.0, 1.0]])  # ŷ_1 = z_0 + z_1, ŷ_0 = 0
    logits = z @ w
    cf = np.stack([np.stack([(zz * (np.arange(2) != k)) @ w for k in range(2)]) for zz in z])
    ev = Evaluation(classes=["neutral", "happiness"], aus=["AU6", "AU12"], labels=np.array([1, 1]), logits=logits,
                    cf_logits=cf, z=z, au_targets=z, au_mask=np.ones_like(z), subjects=np.array(["a", "b"]),
                    signs=np.array([[0, 1], [0, 1]]))
    m = ev.summarize()
    assert m["cf_sensitivity"] == pytest.approx(3 / 4)  # face 0's absent AU12 cannot move ŷ_1
    assert m["cf_sensitivity_seen"] == pytest.approx(1.0)
    # z is the labels here, so it scores the labels' cap exactly: 3 of the 4 parents are labelled present
    assert m["cf_sensitivity_label_cap"] == pytest.approx(3 / 4)
    # an uncoded AU is no pair of the cap; a face labelled with neither parent adds two pairs it cannot pass
    ev.au_mask = np.array([[1.0, 0.0], [1.0, 1.0]])
    assert ev.summarize()["cf_sensitivity_label_cap"] == pytest.approx(3 / 3)
    ev.au_mask = np.ones_like(z)
    ev.au_targets = np.array([[0.0, 0.0], [1.0, 1.0]])
    assert ev.summarize()["cf_sensitivity_label_cap"] == pytest.approx(2 / 4)
