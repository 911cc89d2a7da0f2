import networkx as nx
import numpy as np
import pytest

from facr.errors import GraphError
from facr.graph import AUGraph, emfacs_graph, graph_from_edges, pspi_graph


def toy() -> AUGraph:
    return graph_from_edges(
        "toy",
        [("AU6", "happiness", 1, 0.5), ("AU12", "happiness", 1, 2.0), ("AU15", "happiness", -1, 1.0),
         ("AU1", "sadness", 1), ("AU15", "sadness", 1), ("AU26", "AU25", 1, 1.0, "neighborhood")],
        classes=["happiness", "sadness", "neutral"],
    )


def test_parents_are_direct_au_parents_with_polarity_and_exclude_au_to_au_edges():
    g = toy()
    assert g.parents("happiness") == {"AU6": 1, "AU12": 1, "AU15": -1}
    assert g.parents("sadness") == {"AU1": 1, "AU15": 1}
    assert g.parents("neutral") == {}
    assert [(e.source, e.target) for e in g.au_edges()] == [("AU26", "AU25")]
    assert "AU25" not in g.parents("happiness") and "AU26" not in g.parents("sadness")


def test_sign_and_weight_matrices_follow_the_requested_orders():
    g = toy()
    aus = ["AU15", "AU12", "AU6", "AU1", "AU9"]  # AU9 is not in the graph: an all-zero row
    s = g.sign_matrix(aus, ["sadness", "happiness"])
    np.testing.assert_array_equal(s, [[1, -1], [0, 1], [0, 1], [1, 0], [0, 0]])
    w = g.weight_matrix(aus, ["happiness"])
    np.testing.assert_allclose(w[:, 0], [1.0, 2.0, 0.5, 0.0, 0.0])
    assert g.parent_mask(aus, ["happiness"]).sum() == 3
    a = g.au_sign_matrix(["AU25", "AU26"])
    np.testing.assert_array_equal(a, [[0, 0], [1, 0]])


def test_matrices_accept_any_au_spelling_and_reject_unknown_classes():
    g = toy()
    np.testing.assert_array_equal(g.sign_matrix(["AU06_r", "au 12"], ["happiness"]), [[1], [1]])
    with pytest.raises(GraphError, match="unknown class 'anger'"):
        g.sign_matrix(None, ["anger"])
    with pytest.raises(GraphError, match="unknown class"):
        g.parents("anger")


@pytest.mark.parametrize(
    "edge, message",
    [
        (("AU4", "anger", 0), "sign must be 1 or -1"),
        (("AU4", "anger", True), "sign must be 1 or -1"),
        (("AU4", "anger", 1, -0.5), "weight must be >= 0"),
        (("AU4", "anger", 1, float("nan")), "weight must be finite"),
        (("AU4", "anger", 1, 1.0, "guess"), "provenance must be one of"),
        (("AU6", "happiness", 1), "duplicate edge AU6 -> happiness"),
        (("AU25", "AU26", 1), "would close a cycle"),
        (("AU25", "AU25", 1), "would close a cycle"),
        (("happiness", "sadness", 1), "must start at an AU"),
        (("AU99", "anger", 1), "AU99"),
        (("AU4", "Anger", 1), "lowercase"),
    ],
)
def test_add_edge_enforces_the_format_rules(edge, message):
    g = toy()
    with pytest.raises(Exception, match=message):
        g.add_edge(*edge)


def test_to_networkx_is_a_copy_with_edge_attributes():
    g = toy()
    nxg = g.to_networkx()
    assert isinstance(nxg, nx.DiGraph)
    assert nxg.edges["AU12", "happiness"] == {"sign": 1, "weight": 2.0, "provenance": "manual"}
    assert nxg.nodes["AU25"]["kind"] == "au" and nxg.nodes["neutral"]["kind"] == "class"
    nxg.remove_edge("AU12", "happiness")
    assert "AU12" in g.parents("happiness")


def test_copy_and_equality():
    g = toy()
    h = g.copy()
    assert h == g
    h.remove_edge("AU6", "happiness")
    assert h != g and "AU6" in g.parents("happiness")


def test_emfacs_graph_has_the_prototypes_and_the_fixed_pspi_composition():
    g = emfacs_graph()
    assert g.classes == ["happiness", "sadness", "surprise", "fear", "anger", "disgust", "contempt", "pain"]
    assert g.parents("happiness") == {"AU6": 1, "AU12": 1}
    assert g.parents("sadness") == {"AU1": 1, "AU4": 1, "AU15": 1}
    assert g.parents("surprise") == {"AU1": 1, "AU2": 1, "AU5": 1, "AU26": 1}
    assert set(g.parents("pain")) == {"AU4", "AU6", "AU7", "AU9", "AU10", "AU43"}
    assert {e.provenance for e in g.parent_edges("pain")} == {"pspi"}
    assert {e.provenance for e in g.parent_edges("anger")} == {"emfacs"}
    assert all(s == 1 for c in g.classes for s in g.parents(c).values())
    assert "emfacs" in g.meta["references"] and "Prkachin" in g.meta["references"]["pspi"]
    assert pspi_graph().classes == ["pain"]
