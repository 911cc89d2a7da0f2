import pytest
import torch

from facr.causal import do, intervene_all, intervention_effects, intervention_effects_loop, pair_masks
from facr.losses import (
    LossWeights,
    au_bce,
    au_intensity_loss,
    facr_loss,
    intensity_problem,
    invariance_term,
    plateau_term,
    sensitivity_term,
)


class CountingLinear(torch.nn.Module):
    """A linear head that counts its calls."""

    def __init__(self, weight, bias):
        super().__init__()
        self.weight = torch.as_tensor(weight, dtype=torch.float32)
        self.bias = torch.as_tensor(bias, dtype=torch.float32)
        self.calls = 0

    def forward(self, z):
        self.calls += 1
        return z @ self.weight.T + self.bias


def test_do_sets_the_chosen_units_and_leaves_z_untouched():
    z = torch.tensor([[0.9, 0.2, 0.7], [0.1, 0.8, 0.6]])
    out = do(z, [0, 2], 0.0)
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.2, 0.0], [0.0, 0.8, 0.0]]))
    assert z[0, 0].item() == pytest.approx(0.9)
    assert do(z, 1, 0.5)[:, 1].tolist() == [0.5, 0.5]


def test_intervene_all_lays_out_factual_then_one_intervention_per_au():
    z = torch.tensor([[0.9, 0.2, 0.7]])
    grid = intervene_all(z)
    assert grid.shape == (1, 4, 3)
    torch.testing.assert_close(grid[0], torch.tensor([[0.9, 0.2, 0.7], [0.0, 0.2, 0.7], [0.9, 0.0, 0.7],
                                                      [0.9, 0.2, 0.0]]))


def test_effects_come_from_one_batched_head_call_and_match_the_loop():
    torch.manual_seed(0)
    head = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.GELU(), torch.nn.Linear(7, 3))
    counting = CountingLinear(torch.randn(3, 5), torch.randn(3))
    z = torch.rand(4, 5)
    batched = intervention_effects(counting, z)
    assert counting.calls == 1
    looped = intervention_effects_loop(counting, z)
    assert counting.calls == 1 + 1 + 5
    torch.testing.assert_close(batched.delta, looped.delta)
    e = intervention_effects(head, z)
    torch.testing.assert_close(e.logits, head(z))
    torch.testing.assert_close(e.cf_logits[:, 2], head(do(z, 2)))


def test_linear_head_effect_is_weight_times_activation():
    w = torch.tensor([[2.0, -1.0, 0.0], [0.5, 0.0, 3.0]])
    head = CountingLinear(w, [0.1, -0.2])
    z = torch.tensor([[0.8, 0.5, 0.1]])
    e = intervention_effects(head, z)
    # Δ_kc = ŷ_c − ŷ_c^{do(z_k=0)} = W_ck z_k
    torch.testing.assert_close(e.delta[0], (w * z).T)
    torch.testing.assert_close(e.for_class(torch.tensor([1]))[0], torch.tensor([0.4, 0.0, 0.3]))


SIGNS = torch.tensor([[1, 0], [-1, 0], [0, 1], [0, 0]])  # K=4 AUs x C=2 classes


def test_pair_masks_select_parents_of_each_samples_class():
    z = torch.tensor([[0.9, 0.2, 0.7, 0.6], [0.9, 0.2, 0.3, 0.6]])
    m = pair_masks(SIGNS, torch.tensor([0, 1]), z)
    assert m.sign.tolist() == [[1, -1, 0, 0], [0, 0, 1, 0]]
    assert m.causal.tolist() == [[True, True, False, False], [False, False, True, False]]
    assert m.irrelevant.tolist() == [[False, False, True, True], [True, True, False, True]]
    active = pair_masks(SIGNS, torch.tensor([0, 1]), z, scope="active")
    assert active.causal.tolist() == [[True, False, False, False], [False, False, False, False]]
    assert active.irrelevant.tolist() == m.irrelevant.tolist()


def test_sensitivity_and_invariance_terms_against_hand_computed_values():
    delta = torch.tensor([[0.8, 0.1, 0.3, -0.2], [0.0, 0.4, 0.25, 0.0]])
    m = pair_masks(SIGNS, torch.tensor([0, 1]), torch.ones(2, 4))
    gamma = 0.5
    # sample 0, c=0: parents AU0 (s=+1, Δ=0.8 -> hinge 0) and AU1 (s=-1, Δ=0.1 -> hinge 0.5+0.1=0.6): mean 0.3
    # sample 1, c=1: parent AU2 (s=+1, Δ=0.25 -> hinge 0.25): mean 0.25          => L_sens = 0.275
    assert sensitivity_term(delta, m, gamma).item() == pytest.approx(0.275)
    # sample 0 irrelevant AU2, AU3: (0.09 + 0.04)/2 = 0.065; sample 1: AU0, AU1, AU3: 0.16/3 => mean
    assert invariance_term(delta, m).item() == pytest.approx((0.065 + 0.16 / 3) / 2)


def test_classes_without_parents_add_nothing_to_sensitivity():
    signs = torch.tensor([[1, 0], [0, 0]])
    m = pair_masks(signs, torch.tensor([1, 1]), torch.ones(2, 2))
    assert sensitivity_term(torch.ones(2, 2), m, 0.5).item() == 0.0
    assert invariance_term(torch.full((2, 2), 0.5), m).item() == pytest.approx(0.25)


def test_au_bce_ignores_uncoded_aus():
    logits = torch.tensor([[2.0, -1.0, 5.0]])
    targets = torch.tensor([[1.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    softplus = torch.nn.functional.softplus
    expected = (softplus(torch.tensor(-2.0)) + softplus(torch.tensor(-1.0))) / 2
    assert au_bce(logits, targets, mask).item() == pytest.approx(expected.item())


def _toy_batch():
    """A linear head on 4 AUs and 2 classes, and a batch of two: (effects, z, z logits, labels, AU targets)."""
    head = CountingLinear(torch.tensor([[2.0, -1.0, 0.0, 0.5], [0.0, 0.0, 1.0, 0.0]]), [0.0, 0.0])
    z_logits = torch.tensor([[1.0, -1.0, 0.5, 0.0], [-2.0, 1.0, 2.0, 0.0]])
    z = torch.sigmoid(z_logits)
    return intervention_effects(head, z), z, z_logits, torch.tensor([0, 1]), torch.tensor([[1, 0, 1, 0], [0, 1, 1, 0]])


def test_full_objective_adds_weighted_terms_and_faith_off_drops_them():
    effects, z, z_logits, y, a = _toy_batch()
    mask = torch.ones(2, 4)
    w = LossWeights(lambda_a=1.0, lambda_s=0.5, lambda_i=8.0, gamma=0.5)
    out = facr_loss(effects, z, z_logits, y, a, mask, SIGNS, w)
    m = pair_masks(SIGNS, y, z)
    d = effects.for_class(y)
    expected = (torch.nn.functional.cross_entropy(effects.logits, y) + au_bce(z_logits, a, mask)
                + 0.5 * sensitivity_term(d, m, 0.5) + 8.0 * invariance_term(d, m))
    assert out.total.item() == pytest.approx(expected.item())
    assert out.sens.item() > 0 and out.inv.item() > 0
    off = facr_loss(effects, z, z_logits, y, a, mask, SIGNS, LossWeights(lambda_s=0.0, lambda_i=0.0))
    assert off.sens.item() == 0.0 and off.inv.item() == 0.0
    assert off.total.item() == pytest.approx((out.ce + out.au_bce).item())


def test_loss_weights_name_the_bad_field():
    with pytest.raises(ValueError, match="lambda_i"):
        LossWeights(lambda_i=-1)
    with pytest.raises(ValueError, match="scope"):
        LossWeights(scope="some")
    with pytest.raises(ValueError, match="au_intensity must be >= 0"):
        LossWeights(au_intensity=-0.5)
    with pytest.raises(ValueError, match=r"au_intensity_gap must be in \(0, 10\], got 0"):
        LossWeights(au_intensity_gap=0)
    with pytest.raises(ValueError, match="presence_plateau must be >= 0"):
        LossWeights(presence_plateau=-1)
    for width in (0.0, 0.6):
        with pytest.raises(ValueError, match=r"plateau_width must be in \(0, 0.5\]"):
            LossWeights(plateau_width=width)


def test_au_intensity_terms_against_hand_computed_values():
    softplus = torch.nn.functional.softplus
    gap = 2.0
    logits = torch.tensor([[3.0, 1.0, -1.0]])
    level = torch.tensor([[2.0, 0.0, float("nan")]])  # AU a at intensity B, AU b absent, AU c not coded
    # cut points of intensities 2..5 at logits 2, 4, 6, 8; BCE = softplus(-x) for a target 1, softplus(x) for 0
    a = softplus(torch.tensor(-(3.0 - 2))) + sum(softplus(torch.tensor(3.0 - c)) for c in (4, 6, 8))
    b = sum(softplus(torch.tensor(1.0 - c)) for c in (2, 4, 6, 8))
    assert au_intensity_loss(logits, level, gap).item() == pytest.approx(((a + b) / 2).item())
    assert au_intensity_loss(logits, torch.full((1, 3), float("nan")), gap).item() == 0.0


def test_au_intensity_terms_order_the_logit_by_intensity_and_leave_uncoded_aus_alone():
    logits = torch.tensor([[1.0, 5.0, 3.0]], requires_grad=True)
    level = torch.tensor([[5.0, 1.0, float("nan")]])  # a strong AU held low, a trace AU held high, one uncoded
    au_intensity_loss(logits, level, 2.0).backward()
    grad = logits.grad[0]
    assert grad[0] < 0 and grad[1] > 0  # descent raises the strong AU's logit and lowers the trace AU's
    assert grad[2] == 0
    # the loss is lowest where each logit sits between its intensity's cut points
    ordered = au_intensity_loss(torch.tensor([[9.0, 1.0]]), torch.tensor([[5.0, 1.0]]), 2.0)
    swapped = au_intensity_loss(torch.tensor([[1.0, 9.0]]), torch.tensor([[5.0, 1.0]]), 2.0)
    assert ordered.item() < 0.5 and swapped.item() > 10


def test_full_objective_adds_the_intensity_terms_only_when_weighted():
    effects, z, z_logits, y, a = _toy_batch()
    level = torch.tensor([[3.0, 0.0, 1.0, 0.0], [0.0, 4.0, 2.0, float("nan")]])
    plain = facr_loss(effects, z, z_logits, y, a, torch.ones(2, 4), SIGNS, LossWeights())
    unweighted = facr_loss(effects, z, z_logits, y, a, torch.ones(2, 4), SIGNS, LossWeights(), au_intensity=level)
    assert unweighted.total.item() == plain.total.item() and unweighted.intensity is None
    w = LossWeights(au_intensity=0.5, au_intensity_gap=1.5)
    out = facr_loss(effects, z, z_logits, y, a, torch.ones(2, 4), SIGNS, w, au_intensity=level)
    term = au_intensity_loss(z_logits, level, 1.5)
    assert out.intensity.item() == pytest.approx(term.item()) and term.item() > 0
    assert out.total.item() == pytest.approx((plain.total + 0.5 * term).item())
    assert out.as_floats()["intensity"] == pytest.approx(term.item())


def test_intensity_problem_names_what_the_data_lack():
    nan = float("nan")
    assert intensity_problem([[nan, 2.0]], 0.0) is None and intensity_problem([[nan, nan]], 0.0) is None
    assert intensity_problem([[0.0, 5.0], [nan, 1.0]], 1.0) is None
    assert intensity_problem([[nan, nan]], 1.0) == ("loss.au_intensity needs AU intensities (0-5), and no "
                                                    "training record codes one")
    assert intensity_problem([[0.0, 0.7], [nan, 12.0]], 1.0) == (
        "loss.au_intensity orders FACS intensities A-E (levels 1-5), but the training records code levels up to 12")


def test_plateau_term_against_hand_computed_values():
    """Only a present parent of the sample's class sinks: AU a (parent of class 0, z 0.9), AU b (parent of
    class 0 but absent, z 0.3) and AU d (present, z 0.9, but no parent of class 0) stay where they are."""
    head = CountingLinear([[2.0, -1.0, 0.0, 0.5], [0.0, 0.0, 1.0, 0.0]], [0.0, 0.0])
    z = torch.tensor([[0.9, 0.3, 0.8, 0.9], [0.2, 0.9, 0.7, 0.9]])
    u = torch.full((2, 4), 0.5)
    # sample 0, class 0: AU a sinks by 0.1 * 0.5, the logit by 2 * 0.05; sample 1, class 1: AU c, 1 * 0.05
    expected = ((2.0 * 0.05) ** 2 + (1.0 * 0.05) ** 2) / 2
    assert plateau_term(head, z, torch.tensor([0, 1]), SIGNS, 0.1, 0.5, u).item() == pytest.approx(expected, rel=1e-5)
    # no present parent (class 1 with AU c absent): nothing sinks, the term is 0
    assert plateau_term(head, torch.tensor([[0.9, 0.9, 0.4, 0.9]]), torch.tensor([1]), SIGNS, 0.1, 0.5,
                        u[:1]).item() == 0.0


def test_plateau_term_trains_the_head_only_and_flattens_it_over_present_parents():
    head = torch.nn.Linear(4, 2)
    with torch.no_grad():
        head.weight.fill_(3.0)  # a steep head: a wobble of 0.1 in any z moves each logit by 0.3
        head.bias.zero_()
    z = torch.tensor([[0.95, 0.1, 0.2, 0.9], [0.1, 0.2, 0.9, 0.3]], requires_grad=True)
    y = torch.tensor([0, 1])
    plateau_term(head, z, y, SIGNS, 0.1, 0.5, torch.rand(2, 4)).backward()
    assert z.grad is None and head.weight.grad.abs().sum() > 0
    assert plateau_term(head, z, y, SIGNS, 0.1, 0.5, torch.ones(2, 4)).item() == pytest.approx(0.09, rel=1e-5)
    opt = torch.optim.SGD(head.parameters(), lr=5.0)
    for _ in range(100):
        opt.zero_grad()
        plateau_term(head, z, y, SIGNS, 0.1, 0.5, torch.rand(2, 4)).backward()
        opt.step()
    assert plateau_term(head, z, y, SIGNS, 0.1, 0.5, torch.ones(2, 4)).item() < 0.009
    # flat along the present parents (AU a for class 0, AU c for class 1), untouched elsewhere: the absent
    # parent AU b, which do(z_b = 0) still moves, and every non-parent
    w = head.weight.detach()
    assert abs(w[0, 0]) < 1.0 and abs(w[1, 2]) < 1.0
    assert w[0, 1:].tolist() == [3.0, 3.0, 3.0] and [w[1, k].item() for k in (0, 1, 3)] == [3.0, 3.0, 3.0]


def test_full_objective_adds_the_plateau_only_when_weighted_and_needs_the_head():
    effects, z, z_logits, y, a = _toy_batch()
    head = CountingLinear([[2.0, -1.0, 0.0, 0.5], [0.0, 0.0, 1.0, 0.0]], [0.0, 0.0])  # _toy_batch's head
    plain = facr_loss(effects, z, z_logits, y, a, torch.ones(2, 4), SIGNS, LossWeights())
    unweighted = facr_loss(effects, z, z_logits, y, a, torch.ones(2, 4), SIGNS, LossWeights(), head=head)
    assert unweighted.total.item() == plain.total.item() and unweighted.plateau is None and head.calls == 0
    w = LossWeights(presence_plateau=4.0, plateau_width=0.2)
    torch.manual_seed(1)
    out = facr_loss(effects, z, z_logits, y, a, torch.ones(2, 4), SIGNS, w, head=head)
    torch.manual_seed(1)
    term = plateau_term(head, z, y, SIGNS, 0.2, 0.5, torch.rand_like(z))
    assert out.plateau.item() == pytest.approx(term.item()) and term.item() > 0
    assert out.total.item() == pytest.approx((plain.total + 4.0 * term).item())
    assert out.as_floats()["plateau"] == pytest.approx(term.item())
    with pytest.raises(ValueError, match="presence_plateau needs the head"):
        facr_loss(effects, z, z_logits, y, a, torch.ones(2, 4), SIGNS, w)
