import pytest

from facr.errors import GraphError
from facr.graph import diff, emfacs_graph, graph_from_edges, permute, pspi_graph


def test_permute_moves_every_class_row_to_another_class_with_a_seed():
    g = emfacs_graph()
    p = permute(g, seed=3)
    mapping = p.meta["row_taken_from"]
    assert sorted(mapping) == sorted(g.classes) and sorted(mapping.values()) == sorted(g.classes)
    assert all(src != dst for dst, src in mapping.items())  # a derangement
    for cls in g.classes:
        assert p.parents(cls) == g.parents(mapping[cls])
        assert {e.provenance for e in p.parent_edges(cls)} <= {"permuted"}
    assert permute(g, seed=3) == p
    assert permute(g, seed=4).meta["row_taken_from"] != mapping


def test_permute_keeps_au_to_au_edges_and_needs_two_classes():
    g = graph_from_edges("g", [("AU6", "happiness", 1), ("AU1", "sadness", 1),
                               ("AU26", "AU25", 1, 1.0, "neighborhood")])
    p = permute(g, seed=0)
    assert p.parents("happiness") == {"AU1": 1} and p.parents("sadness") == {"AU6": 1}
    assert [(e.source, e.target, e.provenance) for e in p.au_edges()] == [("AU26", "AU25", "neighborhood")]
    with pytest.raises(GraphError, match="needs at least two"):
        permute(pspi_graph(), seed=0)


def test_diff_reports_added_removed_sign_flips_and_changes():
    a = graph_from_edges("a", [("AU6", "happiness", 1), ("AU12", "happiness", 1), ("AU15", "sadness", 1, 1.0)])
    b = graph_from_edges("b", [("AU12", "happiness", 1, 2.0), ("AU15", "sadness", -1), ("AU4", "sadness", 1)])
    d = diff(a, b)
    assert [(e.source, e.target) for e in d.added] == [("AU4", "sadness")]
    assert [(e.source, e.target) for e in d.removed] == [("AU6", "happiness")]
    assert [(x.source, x.sign, y.sign) for x, y in d.sign_flips] == [("AU15", 1, -1)]
    assert [(x.weight, y.weight) for x, y in d.changed] == [(1.0, 2.0)]
    assert d.nodes_added == ["AU4"] and d.nodes_removed == ["AU6"]
    text = d.format()
    assert "+ AU4 -> sadness" in text and "- AU6 -> happiness" in text and "! AU15 -> sadness sign + -> -" in text
    assert diff(a, a.copy()).is_empty and not d.is_empty
    assert d.to_dict()["identical"] is False
