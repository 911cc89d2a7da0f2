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


def hand_table() -> AUTable:
    """300 rows built by hand: happiness shows AU12 (80 of 100), disgust AU9 (80 of 100), neutral
    neither; AU4 is on in exactly half of every (class, AU12, AU9) cell, so it tells nothing.

    Against the neutral face, happiness differs only in AU12 and disgust only in AU9. Against the
    rest, each class's absence of the other's AU is evidence too (AU9 only ever appears on disgust,
    so it speaks against happiness and against neutral), so one-vs-rest adds inhibitory edges.
    """
    rows, labels = [], []
    for cls, au12, au9 in (("neutral", 0, 0), ("happiness", 1, 0), ("disgust", 0, 1)):
        for i in range(100):
            on = i < 80 or cls == "neutral"  # 20 happy / disgusted faces do not show their AU
            a12, a9 = (au12 if on else 0), (au9 if on else 0)
            rows.append([i % 2, a9, a12])  # AU4 alternates inside every cell
            labels.append(cls)
    return AUTable(["AU4", "AU9", "AU12"], np.asarray(rows, dtype=float), labels, "hand.csv")


def class_edges(graph) -> set[tuple[str, str, int]]:
    return {(e.source, e.target, e.sign) for e in graph.class_edges()}


NEUTRAL_EDGES = {("AU12", "happiness", 1), ("AU9", "disgust", 1)}
REST_EDGES = NEUTRAL_EDGES | {("AU9", "happiness", -1), ("AU12", "disgust", -1),
                              ("AU12", "neutral", -1), ("AU9", "neutral", -1)}


def test_paper_one_vs_rest_and_one_vs_neutral_give_the_hand_predicted_edges():
    from facr.graph.induce import PAPER_INDUCTION

    table = hand_table()
    neutral = induce_graph(table, InductionConfig(n_bootstrap=20, au_edges=False))
    paper = induce_graph(table, InductionConfig(**PAPER_INDUCTION, au_edges=False))
    assert class_edges(neutral) == NEUTRAL_EDGES
    assert class_edges(paper) == REST_EDGES
    assert neutral.meta["contrast"] == "one-vs-neutral" and neutral.meta["selection"] == "stability"
    assert paper.meta["contrast"] == "one-vs-rest" and paper.meta["selection"] == "nonzero"
    # non-zero selection draws no resamples, so its edges carry no stability
    assert all(e.stability is None for e in paper.class_edges())
    assert all(e.stability is not None and e.stability >= 0.9 for e in neutral.class_edges())


def test_selection_is_independent_of_the_contrast():
    table = hand_table()
    rest_stable = induce_graph(table, InductionConfig(reference="rest", n_bootstrap=20, au_edges=False))
    neutral_nonzero = induce_graph(table, InductionConfig(selection="nonzero", au_edges=False))
    assert class_edges(rest_stable) == REST_EDGES  # every edge of this table is strong enough to be stable
    assert class_edges(neutral_nonzero) == NEUTRAL_EDGES


def test_selection_is_validated():
    with pytest.raises(ValueError, match="selection must be one of stability, nonzero, got 'all'"):
        InductionConfig(selection="all")


def test_graph_induce_cli_selection_flag_gives_the_papers_graph(tmp_path, capsys):
    from facr.cli import main
    from facr.graph import load_graph

    table = hand_table()
    path = tmp_path / "hand.csv"
    path.write_text("AU4,AU9,AU12,emotion\n" + "".join(
        f"{int(r[0])},{int(r[1])},{int(r[2])},{lab}\n" for r, lab in zip(table.presence, table.labels)))
    out = tmp_path / "paper.json"
    code = main(["graph", "induce", str(path), "--label-column", "emotion", "--reference", "rest",
                 "--selection", "nonzero", "--no-au-edges", "--out", str(out)])
    assert code == 0
    assert "contrast one-vs-rest" in capsys.readouterr().out
    assert class_edges(load_graph(out)) == REST_EDGES
    with pytest.raises(SystemExit) as exc:
        main(["graph", "induce", str(path), "--label-column", "emotion", "--selection", "some", "--out", str(out)])
    assert exc.value.code == 2


def test_training_graph_spec_induced_ovr_is_the_papers_induction_and_induced_stays_facrs():
    from facr.data.records import FaceRecord
    from facr.data.torch_data import Task
    from facr.graph.controls import permute
    from facr.train import Splits, resolve_training_graph

    table = hand_table()
    records = [FaceRecord(image=f"{i}.png", dataset="hand", subject=f"s{i % 5}", emotion=lab,
                          au_presence={au: int(v) for au, v in zip(table.aus, row)})
               for i, (row, lab) in enumerate(zip(table.presence, table.labels))]
    splits, task = Splits(records, [], []), Task("emotion", ["neutral", "happiness", "disgust"])
    paper = resolve_training_graph("induced-ovr", "induced", 0, splits, task, au_edges=False)
    facr_default = resolve_training_graph("induced", "induced", 0, splits, task, au_edges=False)
    assert class_edges(paper) == REST_EDGES and paper.meta["contrast"] == "one-vs-rest"
    assert class_edges(facr_default) == NEUTRAL_EDGES and facr_default.meta["contrast"] == "one-vs-neutral"
    # the corrupted-graph control can permute the paper's graph too
    corrupted = resolve_training_graph("permuted", "induced-ovr", 3, splits, task, au_edges=False)
    assert class_edges(corrupted) == class_edges(permute(resolve_training_graph(
        "induced-ovr", "induced", 3, splits, task, au_edges=False), 3))
    assert class_edges(corrupted) != REST_EDGES
