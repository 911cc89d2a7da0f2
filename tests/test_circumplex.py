import json
import math

import numpy as np
import pytest
import torch

from facr.circumplex import (
    ANGLES,
    COORDINATES,
    PROXIES,
    affective_distance,
    cost_matrix,
    ot_loss,
    va_distance,
)
from facr.data.records import EMOTIONS


def chord(deg_a, deg_b):
    """Distance between two points of the unit circle, by hand: 2·sin(Δθ/2)."""
    return 2 * math.sin(math.radians(abs(deg_a - deg_b)) / 2)


def test_every_facr_emotion_has_a_place_and_the_emotions_lie_on_the_unit_circle():
    assert set(COORDINATES) == set(EMOTIONS)
    assert COORDINATES["neutral"] == (0.0, 0.0)
    for c in EMOTIONS:
        if c != "neutral":
            assert math.hypot(*COORDINATES[c]) == pytest.approx(1.0, abs=1e-12)
    v, a = COORDINATES["happiness"]
    assert (v, a) == pytest.approx((math.cos(math.radians(7.8)), math.sin(math.radians(7.8))))
    assert ANGLES["fear"] == ("afraid", 116.0) and ANGLES["surprise"] == ("astonished", 69.8)
    assert PROXIES == {"disgust", "contempt"} and "neutral" not in ANGLES


def test_proxies_put_disgust_and_contempt_in_the_unpleasant_aroused_quadrant():
    for c in PROXIES:
        v, a = COORDINATES[c]
        assert v < 0 and a > 0


def test_circumplex_cost_is_symmetric_zero_diagonal_and_scaled_to_one():
    M = cost_matrix(EMOTIONS)
    assert M.dtype == np.float32 and M.shape == (8, 8)
    np.testing.assert_array_equal(M, M.T)
    np.testing.assert_array_equal(np.diag(M), np.zeros(8))
    assert M.max() == 1.0 and M.min() == 0.0
    # neutral is one unit from every emotion; the largest distance is happiness (7.8°) ↔ sadness (207.5°)
    top = chord(7.8, 207.5)
    i = EMOTIONS.index("neutral")
    np.testing.assert_allclose(np.delete(M[i], i), 1 / top, rtol=1e-6)
    assert M[EMOTIONS.index("happiness"), EMOTIONS.index("sadness")] == 1.0


def test_sadness_is_farther_from_happiness_than_fear_is_from_anger():
    d = va_distance(["happiness", "sadness", "fear", "anger"])
    assert d[0, 1] == pytest.approx(chord(7.8, 207.5), abs=1e-12)
    assert d[2, 3] == pytest.approx(chord(116.0, 99.0), abs=1e-12)
    assert (d[0, 1], d[2, 3]) == pytest.approx((1.970518, 0.295619), abs=1e-6)
    assert d[0, 1] > 6 * d[2, 3]


def test_uniform_cost_is_one_off_the_diagonal():
    np.testing.assert_array_equal(cost_matrix(["anger", "fear", "neutral"], kind="uniform"),
                                  1 - np.eye(3, dtype=np.float32))


def test_a_pain_class_has_no_circumplex_place_and_is_named():
    for kind in ("circumplex", "uniform"):
        with pytest.raises(ValueError, match=r"'pain'.*known: neutral, happiness"):
            cost_matrix(["no_pain", "pain"], kind=kind)
    with pytest.raises(ValueError, match="'no_pain', 'pain'"):
        cost_matrix(["no_pain", "pain"])


def test_unknown_kind_and_repeated_class_are_rejected():
    with pytest.raises(ValueError, match="'earth-mover'"):
        cost_matrix(["anger", "fear"], kind="earth-mover")
    with pytest.raises(ValueError, match="repeat 'fear'"):
        cost_matrix(["fear", "anger", "fear"])


def test_uniform_ot_loss_is_one_minus_the_true_class_probability():
    logits = torch.randn(64, 8) * 3
    target = torch.randint(0, 8, (64,))
    loss = ot_loss(logits, target, cost_matrix(EMOTIONS, kind="uniform"))
    p_y = torch.softmax(logits, -1).gather(1, target[:, None]).squeeze(1)
    assert loss.item() == pytest.approx((1 - p_y).mean().item(), abs=1e-6)


def test_circumplex_ot_loss_matches_a_hand_computed_transport_cost():
    classes = ["happiness", "sadness", "neutral"]
    # M[happiness] = [0, d(h,s)/max, d(h,n)/max] with max = d(h,s) = 1.970518 and d(h,n) = 1
    top = chord(7.8, 207.5)
    p = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]], dtype=torch.float64)
    target = torch.tensor([0, 2])
    # sample 1 (happiness): 0.3·1 + 0.2·(1/top); sample 2 (neutral): (0.1 + 0.6)·(1/top)
    expected = (0.3 + 0.2 / top + 0.7 / top) / 2
    loss = ot_loss(p.log(), target, cost_matrix(classes))
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(0.378366, abs=1e-6)


def test_closed_form_equals_the_linear_program_optimum():
    from scipy.optimize import linprog

    M = cost_matrix(EMOTIONS).astype(np.float64)
    p = torch.softmax(torch.randn(8, dtype=torch.float64), -1).numpy()
    y = 5
    q = np.eye(8)[y]
    # plan T [8, 8] flattened row-major: rows sum to p, columns to q, T >= 0
    A = np.vstack([np.kron(np.eye(8), np.ones(8)), np.kron(np.ones(8), np.eye(8))])
    lp = linprog(M.ravel(), A_eq=A, b_eq=np.concatenate([p, q]), bounds=(0, None), method="highs")
    loss = ot_loss(torch.from_numpy(np.log(p))[None], torch.tensor([y]), M)
    assert lp.status == 0
    assert loss.item() == pytest.approx(lp.fun, abs=1e-9)


def test_gradient_pushes_the_far_class_logit_down_harder_than_the_near_one():
    classes = ["happiness", "surprise", "sadness"]  # from happiness: surprise is near, sadness far
    logits = torch.tensor([[1.0, 0.0, 0.0]], requires_grad=True)  # equal p on near and far
    ot_loss(logits, torch.tensor([0]), cost_matrix(classes)).backward()
    g = logits.grad[0]
    assert g[2] > g[1] > 0 > g[0]
    # ∂W/∂z_k = p_k (M[y,k] − W): with equal p_k the gap is p·(M[y,far] − M[y,near])
    p = torch.softmax(logits.detach(), -1)[0]
    gap = p[1] * (1 - chord(7.8, 69.8) / chord(7.8, 207.5))
    assert (g[2] - g[1]).item() == pytest.approx(gap.item(), abs=1e-6)
    # the uniform control cannot tell them apart
    logits.grad = None
    ot_loss(logits, torch.tensor([0]), cost_matrix(classes, kind="uniform")).backward()
    assert logits.grad[0, 1].item() == pytest.approx(logits.grad[0, 2].item(), abs=1e-7)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
def test_ot_loss_takes_any_float_dtype_and_a_tensor_or_array_cost(dtype):
    logits = torch.randn(16, 8)
    target = torch.randint(0, 8, (16,))
    M = cost_matrix(EMOTIONS)
    ref = ot_loss(logits.double(), target, M).item()
    for cost in (M, torch.from_numpy(M)):
        loss = ot_loss(logits.to(dtype), target, cost)
        assert loss.dtype == (dtype if dtype == torch.float64 else torch.float32)
        assert loss.item() == pytest.approx(ref, abs=5e-3 if dtype in (torch.float16, torch.bfloat16) else 1e-6)


def test_ot_loss_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"cost must be \[8, 8\]"):
        ot_loss(torch.randn(2, 8), torch.tensor([0, 1]), cost_matrix(["anger", "fear"]))
    with pytest.raises(ValueError, match="target must be"):
        ot_loss(torch.randn(2, 8), torch.tensor([0, 1, 2]), cost_matrix(EMOTIONS))


def test_affective_distance_of_errors_beside_chance_by_hand():
    classes = ["happiness", "surprise", "sadness", "neutral"]
    labels = ["happiness", "happiness", "sadness", "neutral"]
    predicted = ["surprise", "happiness", "happiness", "neutral"]
    out = affective_distance(labels, predicted, classes)
    h_s, h_surp, s_surp = chord(7.8, 207.5), chord(7.8, 69.8), chord(207.5, 69.8)
    # errors: happiness→surprise and sadness→happiness
    assert out["n_errors"] == 2 and out["n_samples"] == 4
    assert out["error_distance"] == pytest.approx((h_surp + h_s) / 2, abs=1e-12)
    assert out["error_distance"] == pytest.approx(1.500297, abs=1e-6)
    # chance, on the same true labels: each error spread over the 3 other classes (neutral at distance 1)
    chance = ((h_surp + h_s + 1) / 3 + (h_s + s_surp + 1) / 3) / 2
    assert out["chance_error_distance"] == pytest.approx(chance, abs=1e-12)
    # indices give the same answer as names
    assert affective_distance([0, 0, 2, 3], np.array([1, 0, 0, 3]), classes) == out


def test_affective_distance_is_none_without_errors():
    out = affective_distance([0, 1, 2], [0, 1, 2], ["anger", "fear", "disgust"])
    assert out == {"n_samples": 3, "n_errors": 0, "error_distance": None, "chance_error_distance": None}


def test_affective_distance_rejects_unknown_labels_and_length_mismatch():
    with pytest.raises(ValueError, match="'pain'"):
        affective_distance(["pain"], ["anger"], ["anger", "fear"])
    with pytest.raises(ValueError, match="differ in length"):
        affective_distance([0, 1], [0], ["anger", "fear"])


def test_everything_is_json_able():
    out = affective_distance([0, 1, 1], [1, 1, 0], ["anger", "contempt"])
    assert json.loads(json.dumps(out, sort_keys=True)) == out
    assert all(type(v) in (int, float) for v in out.values())
    json.dumps({"coordinates": COORDINATES, "angles": ANGLES, "cost": cost_matrix(EMOTIONS).tolist()})
