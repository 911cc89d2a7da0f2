"""Control graphs for the paper's ablations."""

from __future__ import annotations

import numpy as np

from facr.errors import GraphError
from facr.graph.core import AUGraph


def _derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    while True:
        perm = rng.permutation(n)
        if not np.any(perm == np.arange(n)):
            return perm


def permute(graph: AUGraph, seed: int) -> AUGraph:
    """The corrupted-graph control: class→parent-set rows permuted, with a seed.

    Every class receives the parent set (signs and weights) of another class, drawn as a
    derangement so that no class keeps its own row; the moved edges are tagged
    ``permuted``. AU→AU edges are kept as they are. A model trained on this graph that is
    faithful to it — and not to the original — shows that the objective follows the
    structure it is given (paper, Table II).
    """
    classes = graph.classes
    if len(classes) < 2:
        raise GraphError(
            f"graph {graph.name!r} has {len(classes)} class(es): permuting class rows needs at least two"
        )
    rng = np.random.default_rng(seed)
    perm = _derangement(len(classes), rng)
    mapping = {classes[i]: classes[int(perm[i])] for i in range(len(classes))}
    meta = dict(graph.meta)
    meta.update({"permuted_from": graph.name, "permutation_seed": int(seed), "row_taken_from": mapping})
    out = AUGraph(f"{graph.name}-permuted-s{seed}", meta)
    for c in classes:
        out.add_class(c)
    for a in graph.aus:
        out.add_au(a)
    for e in graph.au_edges():
        out.add_edge(e.source, e.target, e.sign, e.weight, e.provenance, stability=e.stability, note=e.note)
    for c in classes:
        for e in graph.parent_edges(mapping[c]):
            out.add_edge(e.source, c, e.sign, e.weight, "permuted", note=f"row of {mapping[c]}")
    return out
