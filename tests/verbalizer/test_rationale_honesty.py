"""The rationale audit, honest: the well-formedness checker, AU lists read as a person reads them,
invariance that does not score silence, and the sensitivity ceiling / nameable figures."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from facr import au
from facr.audit.metrics import Explanation
from facr.audit.rationale import RATIONALE_KEYS, RationaleRows, score_rationales
from facr.verbalizer.wellformed import RULES, check_rationale

AUS = ["AU4", "AU6", "AU12"]
CLASSES = ["happiness", "sadness"]
SIGNS = np.array([[0, 1], [1, 0], [1, 0]])  # AU6, AU12 -> happiness; AU4 -> sadness
T = ["AU6", "AU12"]


# ------------------------------------------------------------------ the well-formedness checker
@pytest.mark.parametrize("text", [
    "the face shows AU6 (cheek raiser) and AU12 (lip corner puller); these are characteristic of happiness (0.93).",
    "The cheek raiser (AU6) and the lip corner puller (AU12) are visible. The face looks happy.",
    "AU12 (Lip Corner Puller) and AU6 (Cheek Raiser) point to happiness, with probability 0.93.",
    "AU6 (cheek raiser) and AU12 (lip corner puller) show happiness (93%).",
    "AU6 (cheek raiser) and AU12 (lip corner puller): happiness with a probability of 0.93.",
    "AU6 (cheek raiser) and AU12 (lip corner puller) show happiness, very likely.",
])
def test_checker_passes_well_formed_rationales(text):
    assert check_rationale(text, T, "happiness") == []


GOOD = "AU6 (cheek raiser) and AU12 (lip corner puller) show happiness."


@pytest.mark.parametrize("text, rule", [
    ("", "empty"),
    ("AU6 (cheek raiser). AU12 (lip corner puller). So the face shows happiness.", "sentences"),
    ("AU6 (cheek raiser) shows happiness.", "missing"),
    ("AU6 (cheek raiser), AU12 (lip corner puller) and AU12 (lip corner puller) show happiness.", "repeated"),
    ("AU6 (cheek raiser), AU12 (lip corner puller) and AU4 (brow lowerer) show happiness.", "outside target"),
    ("AU6 (cheek raiser) and AU12 show happiness.", "not in FACS form"),
    ("AU6 (cheek raiser) and AU12 (brow lowerer) show happiness.", "not in FACS form"),  # the wrong name
    ("AU6 - cheek raiser and AU12 (lip corner puller) show happiness.", "not in FACS form"),
    ("AU6 (cheek raiser) and AU12 (lip corner puller) on 2 sides show happiness.", "bare number"),
    ("AU6 (cheek raiser) and AU12 (lip corner puller) are visible.", "no emotion"),
    ("AU6 (cheek raiser) and AU12 (lip corner puller) show happiness. It has four sides.", "after the emotion"),
])
def test_checker_names_the_one_broken_rule(text, rule):
    problems = check_rationale(text, T, "happiness")
    assert [p.split(":")[0] for p in problems] == [rule], problems
    assert rule in RULES
    assert check_rationale(GOOD, T, "happiness") == []  # the same sentence, unbroken


def test_checker_on_the_issues_texts():
    problems = check_rationale("the face shows AU12, AU6 and 1.", T, "happiness")
    assert {p.split(":")[0] for p in problems} == {"outside target", "not in FACS form", "no emotion", "bare number"}
    assert "outside target: AU1" in problems and "bare number: '1'" in problems
    problems = check_rationale("AU10, AU16 and AU16 are disgusted.", ["AU10", "AU16"], "disgust")
    assert [p.split(":")[0] for p in problems] == ["not in FACS form", "repeated"]  # "disgusted" states disgust


def test_checker_with_an_empty_target_asks_only_for_the_emotion():
    assert check_rationale("no action unit is visible; the face reads as sadness.", [], "sadness") == []
    assert check_rationale("no action unit is visible.", [], "sadness") == ["no emotion: sadness"]
    # today's NONE_TEMPLATE goes on after the emotion: not well formed by the rule
    assert check_rationale("no action unit of sadness is visible.", [], "sadness") == [
        "after the emotion: 'is visible.'"]


# ------------------------------------------------------------------ AU lists, read as a person reads them
@pytest.mark.parametrize("text, expected", [
    ("AU6, 1 and 2", [6, 1, 2]),
    ("AUs 4 and 15", [4, 15]),
    ("the face shows AU12, AU6 and 1.", [12, 6, 1]),
    ("AU6 (cheek raiser), 1 (inner brow raiser) and 2.", [6, 1, 2]),
    ("AU6+12", [6, 12]),
    ("AU4, 7; and 9", [4, 7, 9]),
    ("AUs 4 and 15 are raised", [4, 15]),  # the sentence goes on with a verb
    ("as <AU15> (disgust), 2", [15, 2]),  # the verbalizer's AU token, as the text guard decodes it
])
def test_numbers_continuing_an_au_list_name_aus(text, expected):
    assert au.extract(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("AU12 at 0.93", [12]),  # a probability
    ("AU6, 0.93 and 2", [6]),  # a decimal ends the list
    ("AU6 and 2 eyes", [6]),  # a count of something else
    ("2 eyes and 1 mouth", []),  # no AU token: no list
    ("p = 0.93, 2, 4", []),
    ("AU6, 12% and 1", [6]),  # a percentage ends the list
    ("AU6, 2. AU4 - Brow Lowerer", [6, 4]),  # "2." indexes the next item, it is not AU2
    ("AU6 is raised, 2 more", [6]),  # the list ended at "is"
])
def test_numbers_outside_an_au_list_are_not_aus(text, expected):
    assert au.extract(text) == expected


def test_list_numbers_are_mentions_of_their_own_kind():
    kinds = [(m.number, m.kind) for m in au.mentions("AU6, 1 and the lip corner puller")]
    assert kinds == [(6, "token"), (1, "number"), (12, "name")]


# ------------------------------------------------------------------ the audit's figures
def _rows(zs, emotions):
    z = torch.tensor(zs, dtype=torch.float32)
    n = len(zs) // (len(AUS) + 1)
    return RationaleRows(z, emotions, torch.ones_like(z, dtype=torch.bool), np.repeat(np.arange(n), len(AUS) + 1),
                         np.tile(np.arange(-1, len(AUS)), n))


def _do_rows(base):
    return [base] + [[0.0 if j == k else v for j, v in enumerate(base)] for k in range(len(base))]


def _score(texts, zs, targets):
    n = len(targets)
    return score_rationales(texts, _rows(zs, ["happiness"] * len(texts)), AUS, CLASSES, SIGNS, targets,
                            [Explanation(set(), None, "happiness")] * n, np.array([f"s{i}" for i in range(n)]),
                            ci=False)


def test_a_verbalizer_that_names_nothing_gets_no_invariance():
    zs = _do_rows([0.1, 0.9, 0.8]) + _do_rows([0.7, 0.6, 0.9])
    m = _score([""] * 8, zs, [{"AU6", "AU12"}, {"AU6", "AU12"}])
    assert m["rationale_invariance"] is None and m["rationale_invariance_strict"] is None  # was 1.0
    assert m["n_invariance_pairs"] == 0 and m["n_invariance_pairs_vacuous"] == 2  # do(AU4) on each face
    assert m["rationale_sensitivity"] == 0.0 and m["n_sensitivity_pairs"] == 4
    assert m["rationale_sensitivity_ceiling"] == 1.0  # both causal AUs are in each target
    assert m["empty_rationale_rate"] == 1.0 and m["well_formed_rate"] == 0.0
    assert m["well_formed_problems"] == {"empty": 2}


def test_a_face_naming_no_causal_au_is_left_out_of_invariance_not_counted_invariant():
    zs = _do_rows([0.9, 0.9, 0.8]) + _do_rows([0.9, 0.9, 0.8])
    texts = ["AU4; happiness.", "happiness.", "AU4; happiness.", "AU4; happiness.",  # names only AU4 (not causal)
             "AU6 and AU12; happiness.", "AU6; happiness.", "AU12; happiness.", "AU6; happiness."]
    m = _score(texts, zs, [{"AU6", "AU12"}, {"AU6", "AU12"}])
    # face 1 leaves out its one irrelevant pair; face 2's do(AU4) drops AU12: not invariant
    assert m["rationale_invariance"] == 0.0 and m["n_invariance_pairs"] == 1
    assert m["n_invariance_pairs_vacuous"] == 1
    assert m["pairs"]["irrelevant"] == 1 and m["pairs"]["irrelevant_vacuous"] == 1


def test_sensitivity_ceiling_and_nameable_match_a_hand_count():
    zs = _do_rows([0.2, 0.9, 0.3]) + _do_rows([0.1, 0.8, 0.9])
    texts = [
        # face 1: AU12 not shown (z = 0.3) but named; target {AU6}
        "AU6 (cheek raiser) and AU12 (lip corner puller) show happiness.",
        "AU6 (cheek raiser) and AU12 (lip corner puller) show happiness.",  # do(AU4): unchanged
        "AU12 (lip corner puller) shows happiness.",  # do(AU6): dropped, AU6 shown -> a nameable hit
        "AU6 (cheek raiser) shows happiness.",  # do(AU12): dropped, but AU12 was not shown
        # face 2: "AU6 and 12" names AU12 by the list rule; target {AU6, AU12}
        "AU6 and 12; happiness.",
        "AU6; happiness.",  # do(AU4): AU12 gone -> not invariant
        "AU6 and 12; happiness.",  # do(AU6): kept -> a miss (and AU6 named at z = 0)
        "AU6; happiness.",  # do(AU12): dropped -> a hit
    ]
    m = _score(texts, zs, [{"AU6"}, {"AU6", "AU12"}])
    assert m["rationale_sensitivity"] == 3 / 4 and m["n_sensitivity_pairs"] == 4
    assert m["rationale_sensitivity_ceiling"] == 3 / 4  # AU12 of face 1 is outside its target
    assert m["rationale_sensitivity_nameable"] == 2 / 3 and m["n_sensitivity_pairs_nameable"] == 3
    assert m["rationale_invariance"] == 1 / 2 and m["n_invariance_pairs"] == 2
    assert m["n_invariance_pairs_vacuous"] == 0
    # AU12 named at z = 0.3 in face 1's factual, do(AU4) and do(AU6) rows; AU6 at z = 0 in face 2's do(AU6)
    assert m["named_inactive"] == 4
    assert m["well_formed_rate"] == 0.0  # face 1 names AU12 outside T; face 2 has bare "12", no FACS names


def test_bare_numbers_count_as_named_inactive_and_well_formed_rate_reads_the_factual_text():
    zs = _do_rows([0.1, 0.9, 0.9])
    good = "AU6 (cheek raiser) and AU12 (lip corner puller) show happiness (0.9)."
    m = _score([good, good, "AU12 (lip corner puller) shows happiness.", "AU6 (cheek raiser) shows happiness."],
               zs, [{"AU6", "AU12"}])
    assert m["well_formed_rate"] == 1.0 and m["named_inactive"] == 0 and m["rationale_sensitivity"] == 1.0
    m = _score(["AU6, 12 and 4; happiness."] * 4, zs, [{"AU6", "AU12"}])
    # "4" continues the list: AU4 (z = 0.1) named in the factual row, and every do row names AU4, AU6, AU12
    # with one of them at 0 (do(AU4): AU4; do(AU6): AU4 and AU6; do(AU12): AU4 and AU12)
    assert m["named_inactive"] == 1 + 1 + 2 + 2
    assert m["well_formed_rate"] == 0.0


def test_the_new_keys_are_rationale_keys():
    for key in ("rationale_sensitivity_ceiling", "rationale_sensitivity_nameable", "n_sensitivity_pairs",
                "n_invariance_pairs", "n_invariance_pairs_vacuous", "well_formed_rate"):
        assert key in RATIONALE_KEYS


def test_facr_audit_rationale_json_and_report_carry_the_new_figures(reasoner, trained_verbalizer, run_cli, tmp_path):
    data, _ = reasoner
    out, _ = trained_verbalizer
    code, stdout, err = run_cli("audit", "--model", out, "--data", data, "--rationale", "--limit", 3, "--json",
                                "--mode", "gated", "--out", tmp_path / "report")
    assert code == 0, err
    m = json.loads(stdout)
    for key in RATIONALE_KEYS:
        if key != "aus_per_frame":
            assert key in m, key
    assert 0.0 <= m["well_formed_rate"] <= 1.0
    assert m["n_sensitivity_pairs"] + m["n_invariance_pairs"] + m["n_invariance_pairs_vacuous"] == 3 * len(m["aus"])
    assert m["n_sensitivity_pairs_nameable"] <= m["n_sensitivity_pairs"]
    report = (tmp_path / "report" / "report.md").read_text()
    assert "well-formed rationales" in report and "irrelevant pairs left out" in report


def test_a_bare_number_after_the_verbalizers_au_token_is_read_as_an_au():
    """The audit reads "<AU6>, 1" (an AU token, then a bare number continuing the list) as naming AU6
    and AU1, raw or cleaned for people, so a free verbalizer's bare numbers count in named_inactive."""
    from facr.verbalizer.model import Verbalizer, clean_text

    assert Verbalizer.named_aus("<AU6>, 1") == ["AU6", "AU1"]
    assert Verbalizer.named_aus(clean_text("the face shows<AU6>, 1 and 2")) == ["AU6", "AU1", "AU2"]


def test_a_rationale_that_says_there_is_nothing_to_name_is_not_empty():
    """Face 1's target T is empty and its rationale names nothing and says so: not an empty
    rationale. Face 2 has AUs to name and names none: empty. Face 3 names its T."""
    zs = _do_rows([0.1, 0.2, 0.3]) + _do_rows([0.1, 0.9, 0.8]) + _do_rows([0.1, 0.9, 0.8])
    said = "no action unit of it is visible; the reasoner still reads happiness (p = 0.40)."
    named = "the face shows AU6 (cheek raiser) and AU12 (lip corner puller); happiness (p = 0.9)."
    texts = [said] * 4 + ["the face shows happiness (p = 0.90)."] * 4 + [named] * 4
    m = _score(texts, zs, [set(), {"AU6", "AU12"}, {"AU6", "AU12"}])
    assert m["empty_rationale_rate"] == pytest.approx(1 / 3)  # face 2 only
    assert m["no_au_named_rate"] == pytest.approx(2 / 3) and m["empty_target_rate"] == pytest.approx(1 / 3)
    assert m["named_equals_target"] == pytest.approx(2 / 3)
