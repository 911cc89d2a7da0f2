"""The polarity-aware AU→emotion causal graph G = (A ∪ C, E) and its tools."""

from facr.graph.compare import GraphDiff, diff
from facr.graph.controls import permute
from facr.graph.core import AUGraph, Edge, graph_from_edges
from facr.graph.io import (
    BUILTIN_GRAPHS,
    dumps_graph,
    graph_from_dict,
    graph_to_dict,
    load_graph,
    resolve_graph,
    save_graph,
)
from facr.graph.prototypes import EMFACS_PROTOTYPES, builtin_graph, emfacs_graph, pspi_graph
from facr.graph.validate import PROVENANCES

__all__ = [
    "AUGraph",
    "BUILTIN_GRAPHS",
    "EMFACS_PROTOTYPES",
    "Edge",
    "GraphDiff",
    "PROVENANCES",
    "builtin_graph",
    "diff",
    "dumps_graph",
    "emfacs_graph",
    "graph_from_dict",
    "graph_from_edges",
    "graph_to_dict",
    "load_graph",
    "permute",
    "pspi_graph",
    "resolve_graph",
    "save_graph",
]
