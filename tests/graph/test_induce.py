import numpy as np
import pytest

from facr.errors import DataFormatError
from facr.graph.induce import AUTable, InductionConfig, induce_graph, read_au_table, resolve_reference

AUS = [1, 2, 4, 5, 6, 7, 9, 10, 12, 15, 20, 23, 24, 25, 26]
# The known signed graph: class -> {AU: polarity}; neutral is the all-baseline face.
TRUTH = {
    "happiness": {6: 1, 12: 1, 4: -1, 15: -1},
    "sadness": {1: 1, 4: 1, 15: 1, 12: -1},
    "surprise": {1: 1, 2: 1, 5: 1, 26: 1},
    "anger": {4: 1, 7: 1, 23: 1, 24: 1},
    "disgust": {9: 1, 10: 1, 15: 1},
    "neutral": {},
}


def sample(n: int, seed: int, truth=TRUTH, base=0.15, on=0.8, off=0.02, coactivation=0.7) -> AUTable:
    """AU presence drawn from the known graph: class c sets its parents' rates (on / off), others stay
    at the base rate; AU26 co-activates AU25 (the one true AU->AU edge)."""
    rng = np.random.default_rng(seed)
    classes = list(truth)
    y = rng.integers(0, len(classes), n)
    p = np.full((n, len(AUS)), base)
    for ci, c in enumerate(classes):
        for a, s in truth[c].items():
            p[y == ci, AUS.index(a)] = on if s > 0 else off
    x = (rng.random(p.shape) < p).astype(float)
    co = (x[:, AUS.index(26)] == 1) & (rng.random(n) < coactivation)
    x[co, AUS.index(25)] = 1.0
    return AUTable([f"AU{a}" for a in AUS], x, [classes[i] for i in y], "known.csv")


def edge_scores(graph, truth=TRUTH):
    true = {(f"AU{a}", c): s for c, ps in truth.items() for a, s in ps.items()}
    found = {(e.source, e.target): e.sign for e in graph.class_edges()}
    same_edge = true.keys() & found.keys()
    precision = len(same_edge) / max(len(found), 1)
    recall = len(same_edge) / len(true)
    sign_acc = np.mean([found[k] == true[k] for k in same_edge])
    return precision, recall, sign_acc


@pytest.mark.slow
def test_induction_recovers_a_known_signed_graph():
    table = sample(4000, seed=1)
    graph = induce_graph(table, InductionConfig(n_bootstrap=30, seed=0))
    precision, recall, sign_acc = edge_scores(graph)
    assert precision >= 0.9, precision
    assert recall >= 0.9, recall
    assert sign_acc == 1.0
    assert graph.meta["contrast"] == "one-vs-neutral"
    assert graph.parents("neutral") == {}
    assert all(e.provenance == "induced-l1" and e.stability >= 0.9 for e in graph.class_edges())
    # the one true co-activation is found and oriented by the rule (rarer AU26 -> more frequent AU25)
    assert [(e.source, e.target, e.sign) for e in graph.au_edges()] == [("AU26", "AU25", 1)]
    assert graph.meta["au_prevalence"]["AU26"] < graph.meta["au_prevalence"]["AU25"]


@pytest.mark.slow
def test_one_vs_rest_also_links_other_classes_evidence_as_inhibitory_edges():
    table = sample(4000, seed=1)
    rest = induce_graph(table, InductionConfig(reference="rest", n_bootstrap=20, au_edges=False))
    ref = induce_graph(table, InductionConfig(reference="neutral", n_bootstrap=20, au_edges=False))
    # AU9 is evidence for disgust, hence against happiness versus the rest; not versus a neutral face
    assert rest.parents("happiness").get("AU9") == -1
    assert "AU9" not in ref.parents("happiness")
    assert edge_scores(rest)[0] < edge_scores(ref)[0]
    assert rest.meta["contrast"] == "one-vs-rest" and rest.parents("neutral")


def test_pain_gets_exactly_pspi_and_emfacs_fills_classes_without_parents():
    rng = np.random.default_rng(0)
    n = 600
    labels = rng.choice(["neutral", "pain", "fear", "happiness"], n)
    x = (rng.random((n, len(AUS))) < 0.2).astype(float)  # no signal at all: nothing is induced
    x[labels == "happiness", AUS.index(12)] = 1.0  # except happiness <- AU12
    graph = induce_graph(AUTable([f"AU{a}" for a in AUS], x, list(labels)),
                         InductionConfig(n_bootstrap=10, fill="emfacs", au_edges=False))
    assert set(graph.parents("pain")) == {"AU4", "AU6", "AU7", "AU9", "AU10", "AU43"}
    assert {e.provenance for e in graph.parent_edges("pain")} == {"pspi"}
    assert graph.parents("fear") == {f"AU{a}": 1 for a in (1, 2, 4, 5, 7, 20, 26)}
    assert {e.provenance for e in graph.parent_edges("fear")} == {"emfacs"}
    assert graph.parents("happiness") == {"AU12": 1}
    assert graph.meta["emfacs_filled"] == ["fear"]
    assert "AU43" in graph.aus  # added by the PSPI composition


def test_reference_rules():
    assert resolve_reference(["anger", "neutral"], "auto") == "neutral"
    assert resolve_reference(["no_pain", "pain"], "auto") == "no_pain"
    assert resolve_reference(["anger", "fear", "happiness"], "auto") is None
    assert resolve_reference(["anger", "neutral"], "rest") is None
    with pytest.raises(ValueError, match="reference class 'calm'"):
        resolve_reference(["anger", "neutral"], "calm")


@pytest.mark.parametrize("field, value", [("cv_folds", 1), ("c_rule", "aic"), ("n_bootstrap", 0),
                                          ("stability_threshold", 1.5), ("fill", "facs"), ("cs", (0.0,))])
def test_config_errors_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        InductionConfig(**{field: value})


def test_read_au_table_handles_openface_columns_intensities_and_missing_values(tmp_path):
    path = tmp_path / "openface.csv"
    path.write_text(
        "frame, confidence, AU04_r, AU04_c, AU12_r, AU12_c, emotion\n"
        "1, 0.98, 2.5, 1, 0.1, 0, Sad\n"
        "2, 0.97, 0.0, 0, 3.0, 1, Happy Face\n"
        "3, 0.20, , 0, 1.0, , sad\n"
        "4, 0.99, 0.3, 0, 2.0, -1, neutral\n"
    )
    table = read_au_table(path, "emotion")
    assert table.aus == ["AU4", "AU12"]
    np.testing.assert_array_equal(table.presence, [[1, 0], [0, 1]])  # the _c columns are used
    assert table.labels == ["sad", "happy_face"]
    assert table.n_dropped == 2  # an empty cell and a -1 (not coded) in the used columns


def test_read_au_table_thresholds_intensities(tmp_path):
    path = tmp_path / "intensity.csv"
    path.write_text("AU 4,Lip Corner Puller,label\n0.5,3,happiness\n2,0,anger\n")
    table = read_au_table(path, "label")
    np.testing.assert_array_equal(table.presence, [[0, 1], [1, 0]])  # 0-5 scale: present at >= 1
    table = read_au_table(path, "label", presence_threshold=0.4)
    np.testing.assert_array_equal(table.presence, [[1, 1], [1, 0]])


@pytest.mark.parametrize(
    "text, message",
    [
        ("AU4,AU12,y\n1,0,happy\n", "no label column 'label'"),
        ("AU4,AU99,label\n1,0,happy\n", "column 'AU99': not a FACS main action unit"),
        ("AU4,AU12,label\n1,x,happy\n", "line 2: column 'AU12': not a number: 'x'"),
        ("AU4,AU12,label\n1,0\n", "line 2: 2 fields, header has 3"),
        ("frame,label\n1,happy\n", "no AU columns found"),
        ("", "empty file"),
        ("AU4,AU04_r,label\n1,1,happy\n", "all name AU4"),
        ("AU4,label\n1,1\n", "label '1'"),
    ],
)
def test_read_au_table_errors_name_the_file_and_line(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataFormatError) as exc:
        read_au_table(path, "label")
    assert str(exc.value).startswith(f"{path}: ") and message in str(exc.value)
