"""The 🤗 evaluate modules load offline from the package and give the audit yardstick's numbers."""

from pathlib import Path

import evaluate
import pytest

from facr.au import canonical
from facr.audit.hf_metrics import METRICS, metric_path
from facr.audit.metrics import Explanation, score_explanations
from facr.errors import UnknownAUError

NAMED = [["AU06", "au 12"], ["AU4"], []]
PARENTS = [["AU6", "Lip Corner Puller", "AU25"], ["AU04_r", "AU7"], ["AU9"]]
ACTIVE = [["AU6", "AU25"], ["AU4", "AU7"], []]


@pytest.fixture(scope="session")
def _modules_cache(tmp_path_factory):
    # evaluate copies a local script into HF_MODULES_CACHE (read once at import) and puts that
    # folder on sys.path; point it at a tmp folder so tests never write into the home dir.
    mp = pytest.MonkeyPatch()
    mp.setattr(evaluate.config, "HF_MODULES_CACHE", tmp_path_factory.mktemp("hf_modules"))
    yield
    mp.undo()


@pytest.fixture
def load(_modules_cache, tmp_path):
    return lambda name: evaluate.load(metric_path(name), cache_dir=str(tmp_path / "evaluate"))


def _sets(lists):
    return [{canonical(a) for a in aus} for aus in lists]


def test_metric_path_points_at_a_loadable_script_and_rejects_unknown_names():
    for name in METRICS:
        assert (Path(metric_path(name)) / f"{name}.py").is_file()
    with pytest.raises(ValueError, match="unknown metric"):
        metric_path("accuracy")


def test_graph_causal_agreement_equals_the_audit_yardstick_on_mixed_spellings(load):
    result = load("graph_causal_agreement").compute(predictions=NAMED, references=PARENTS)
    # sample 0: {6, 12} of {6, 12, 25} = 2/3; sample 1: {4} of {4, 7} = 1/2; sample 2: 0/1
    assert result["graph_causal_agreement"] == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
    assert result["n_defined"] == 3
    # the audit's scorer, each sample's reference as Pa of a class of its own
    parents = {str(i): dict.fromkeys(pa, 1) for i, pa in enumerate(_sets(PARENTS))}
    scores = score_explanations([Explanation(named, str(i), None) for i, named in enumerate(_sets(NAMED))], parents,
                                n_universe=30)
    assert result["graph_causal_agreement"] == pytest.approx(scores.summary()["graph_causal_agreement"])


def test_graph_causal_agreement_skips_empty_parents_and_is_none_without_any(load):
    metric = load("graph_causal_agreement")
    result = metric.compute(predictions=[["AU6"], ["AU4"]], references=[["AU6", "AU7"], []])
    assert result == {"graph_causal_agreement": pytest.approx(1 / 2), "n_defined": 1}
    assert metric.compute(predictions=[["AU6"]], references=[[]]) == {"graph_causal_agreement": None, "n_defined": 0}


def test_named_au_precision_recall_equals_the_audit_yardstick_on_mixed_spellings(load):
    result = load("named_au_precision_recall").compute(predictions=NAMED, references=ACTIVE)
    # precision: 1/2, 1/1, undefined (names nothing); recall: 1/2, 1/2, undefined (none active)
    assert result["active_au_precision"] == pytest.approx((1 / 2 + 1) / 2)
    assert result["active_au_recall"] == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert result["aus_per_frame"] == pytest.approx(1.0)
    assert result["n_samples"] == 3
    scores = score_explanations([Explanation(named, None, None, active=active) for named, active in
                                 zip(_sets(NAMED), _sets(ACTIVE))], {}, n_universe=30).summary()
    assert result["active_au_precision"] == pytest.approx(scores["active_au_precision"])
    assert result["active_au_recall"] == pytest.approx(scores["active_au_recall"])


def test_named_au_precision_is_none_when_no_sample_names_an_au(load):
    result = load("named_au_precision_recall").compute(predictions=[[], []], references=[["AU6"], []])
    assert result == {"active_au_precision": None, "active_au_recall": 0.0, "aus_per_frame": 0.0, "n_samples": 2}


@pytest.mark.parametrize("name", METRICS)
def test_unknown_au_name_raises_unknown_au_error(load, name):
    with pytest.raises(UnknownAUError, match="Smile Muscle"):
        load(name).compute(predictions=[["AU6", "Smile Muscle"]], references=[["AU6"]])


@pytest.mark.parametrize(("name", "references"),
                         [("graph_causal_agreement", PARENTS), ("named_au_precision_recall", ACTIVE)])
def test_add_batch_twice_then_compute_equals_one_compute(load, name, references):
    metric = load(name)
    metric.add_batch(predictions=NAMED[:2], references=references[:2])
    metric.add_batch(predictions=NAMED[2:], references=references[2:])
    assert metric.compute() == load(name).compute(predictions=NAMED, references=references)
