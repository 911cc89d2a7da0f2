"""AUGraph: the directed, polarity-aware AU→emotion causal graph G = (A ∪ C, E)."""

from __future__ import annotations

import copy as _copy
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Sequence

import networkx as nx
import numpy as np

from facr import au as au_vocab
from facr.errors import GraphError
from facr.graph import validate as rules


@dataclass(frozen=True)
class Edge:
    """One edge of G: ``source`` (an AU) → ``target`` (a class or an AU) with polarity ``sign``."""

    source: str
    target: str
    sign: int
    weight: float = 1.0
    provenance: str = "manual"
    stability: float | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The edge as written in a facr-graph file (optional fields only when set)."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def _raise(problem: str | None) -> None:
    if problem:
        raise GraphError(problem)


class AUGraph:
    """A directed graph over AU nodes A and class nodes C, with signed, weighted, tagged edges.

    AU→class edges define each class's direct causal parents Pa(c) with polarity s_kc;
    AU→AU edges (co-activation structure) are kept apart and never enter Pa(c): the paper
    uses the direct parents, not the transitive closure, so noisy AU→AU edges cannot
    contaminate a class's causal set. A networkx ``DiGraph`` holds the structure.

    >>> g = AUGraph("toy")
    >>> g.add_edge("AU06", "happiness", sign=1, provenance="emfacs")
    Edge(source='AU6', target='happiness', sign=1, weight=1.0, provenance='emfacs', stability=None, note=None)
    >>> g.parents("happiness")
    {'AU6': 1}
    """

    def __init__(self, name: str = "graph", meta: dict[str, Any] | None = None):
        self.name = name
        self.meta: dict[str, Any] = dict(meta or {})
        self._g = nx.DiGraph()
        self._class_order: list[str] = []

    # ----------------------------------------------------------------- nodes
    def add_au(self, au: au_vocab.AULike) -> str:
        """Declare an AU node (any spelling); returns its canonical id."""
        node = au_vocab.canonical(au)
        if node in self._g and self._g.nodes[node]["kind"] != "au":
            raise GraphError(f"{node!r} is already a class node")
        self._g.add_node(node, kind="au")
        return node

    def add_class(self, name: str) -> str:
        """Declare a class node (a lowercase word such as ``happiness``); returns it."""
        _raise(rules.problem_class_id(name))
        if name not in self._g:
            self._g.add_node(name, kind="class")
            self._class_order.append(name)
        elif self._g.nodes[name]["kind"] != "class":
            raise GraphError(f"{name!r} is already an AU node")
        return name

    @property
    def aus(self) -> list[str]:
        """AU node ids in ascending AU number."""
        return au_vocab.sort_aus(n for n, d in self._g.nodes(data=True) if d["kind"] == "au")

    @property
    def classes(self) -> list[str]:
        """Class node ids in the order they were declared (the file's order)."""
        return list(self._class_order)

    def kind(self, node: str) -> str | None:
        """``'au'``, ``'class'`` or None for a node id."""
        return self._g.nodes[node]["kind"] if node in self._g else None

    # ----------------------------------------------------------------- edges
    def _node_for_target(self, target: str) -> str:
        if target in self._g and self._g.nodes[target]["kind"] == "class":
            return target
        if au_vocab.is_au(target):
            return self.add_au(target)
        return self.add_class(target)

    def add_edge(
        self,
        source: au_vocab.AULike,
        target: str,
        sign: int,
        weight: float = 1.0,
        provenance: str = "manual",
        *,
        stability: float | None = None,
        note: str | None = None,
    ) -> Edge:
        """Add ``source → target`` (an AU → a class, or an AU → an AU); nodes are declared as needed.

        Raises :class:`~facr.errors.GraphError` for a class source, a duplicate edge, a sign
        other than ±1, a negative or non-finite weight, an unknown provenance, or an AU→AU
        edge that would close a cycle.
        """
        if isinstance(source, str) and self.kind(source) == "class":
            raise GraphError(f"edges must start at an AU node; {source!r} is a class")
        src = self.add_au(source)
        dst = self._node_for_target(target)
        for problem in (rules.problem_sign(sign), rules.problem_weight(weight), rules.problem_provenance(provenance)):
            _raise(problem)
        if stability is not None:
            _raise(rules.problem_stability(stability))
        if self._g.has_edge(src, dst):
            raise GraphError(f"duplicate edge {src} -> {dst}")
        if self._g.nodes[dst]["kind"] == "au":
            if src == dst or nx.has_path(self._au_subgraph(), dst, src):
                raise GraphError(f"edge {src} -> {dst} would close a cycle among AU->AU edges")
        stability = None if stability is None else float(stability)
        edge = Edge(src, dst, int(sign), float(weight), provenance, stability, note)
        self._g.add_edge(src, dst, edge=edge)
        return edge

    def remove_edge(self, source: str, target: str) -> Edge:
        """Remove and return the edge ``source → target``."""
        src = au_vocab.canonical(source)
        if not self._g.has_edge(src, target):
            raise GraphError(f"no edge {src} -> {target}")
        edge = self._g.edges[src, target]["edge"]
        self._g.remove_edge(src, target)
        return edge

    def edge(self, source: str, target: str) -> Edge | None:
        """The edge ``source → target``, or None."""
        src = au_vocab.canonical(source) if au_vocab.is_au(source) else source
        if self._g.has_edge(src, target):
            return self._g.edges[src, target]["edge"]
        return None

    def edges(self, kind: str | None = None) -> list[Edge]:
        """All edges in canonical order; ``kind='class'`` for AU→class, ``'au'`` for AU→AU."""
        if kind not in (None, "class", "au"):
            raise ValueError(f"kind must be None, 'class' or 'au', got {kind!r}")
        out = [d["edge"] for _, v, d in self._g.edges(data=True) if kind is None or self._g.nodes[v]["kind"] == kind]
        return sorted(out, key=self._edge_key)

    def class_edges(self) -> list[Edge]:
        """AU→class edges (the parents of the classes)."""
        return self.edges("class")

    def au_edges(self) -> list[Edge]:
        """AU→AU edges (co-activation structure; never part of Pa(c))."""
        return self.edges("au")

    def _edge_key(self, e: Edge):
        target_is_au = self._g.nodes[e.target]["kind"] == "au"
        return (
            au_vocab.parse(e.source),
            0 if target_is_au else 1,
            au_vocab.parse(e.target) if target_is_au else self._class_order.index(e.target),
        )

    def _au_subgraph(self) -> nx.DiGraph:
        keep = [n for n, d in self._g.nodes(data=True) if d["kind"] == "au"]
        return self._g.subgraph(keep)

    # ------------------------------------------------------------- structure
    def _check_class(self, cls: str) -> None:
        if self.kind(cls) != "class":
            known = ", ".join(self._class_order) or "none"
            raise GraphError(f"unknown class {cls!r} (classes in graph {self.name!r}: {known})")

    def parents(self, cls: str) -> dict[str, int]:
        """Pa(c): the direct AU parents of class ``cls`` with their polarity, ``{"AU6": 1, ...}``."""
        self._check_class(cls)
        edges = sorted((self._g.edges[u, cls]["edge"] for u in self._g.predecessors(cls)), key=self._edge_key)
        return {e.source: e.sign for e in edges}

    def parent_edges(self, cls: str) -> list[Edge]:
        """The edges into class ``cls``, in AU order."""
        self._check_class(cls)
        return sorted((self._g.edges[u, cls]["edge"] for u in self._g.predecessors(cls)), key=self._edge_key)

    def _orders(self, aus: Sequence | None, classes: Sequence[str] | None) -> tuple[list[str], list[str]]:
        au_ids = self.aus if aus is None else [au_vocab.canonical(a) for a in aus]
        if len(set(au_ids)) != len(au_ids):
            raise GraphError(f"AU order has duplicates: {au_ids}")
        cls_ids = self.classes if classes is None else list(classes)
        for c in cls_ids:
            self._check_class(c)
        return au_ids, cls_ids

    def sign_matrix(self, aus: Sequence | None = None, classes: Sequence[str] | None = None) -> np.ndarray:
        """s: a ``[K, C]`` int8 matrix, s[k, c] ∈ {−1, 0, +1} (0 = AU k ∉ Pa(c)).

        ``aus`` may hold AUs absent from the graph (their rows are 0: irrelevant to every
        class); every class in ``classes`` must be in the graph.
        """
        au_ids, cls_ids = self._orders(aus, classes)
        out = np.zeros((len(au_ids), len(cls_ids)), dtype=np.int8)
        for j, c in enumerate(cls_ids):
            for src, sign in self.parents(c).items():
                if src in au_ids:
                    out[au_ids.index(src), j] = sign
        return out

    def weight_matrix(self, aus: Sequence | None = None, classes: Sequence[str] | None = None) -> np.ndarray:
        """A ``[K, C]`` float matrix of edge weights (0 where there is no edge)."""
        au_ids, cls_ids = self._orders(aus, classes)
        out = np.zeros((len(au_ids), len(cls_ids)), dtype=np.float64)
        for j, c in enumerate(cls_ids):
            for e in self.parent_edges(c):
                if e.source in au_ids:
                    out[au_ids.index(e.source), j] = e.weight
        return out

    def parent_mask(self, aus: Sequence | None = None, classes: Sequence[str] | None = None) -> np.ndarray:
        """A ``[K, C]`` bool matrix: AU k ∈ Pa(c)."""
        return self.sign_matrix(aus, classes) != 0

    def au_sign_matrix(self, aus: Sequence | None = None) -> np.ndarray:
        """A ``[K, K]`` int8 matrix of AU→AU polarities (row = source, column = target)."""
        au_ids, _ = self._orders(aus, [])
        out = np.zeros((len(au_ids), len(au_ids)), dtype=np.int8)
        for e in self.au_edges():
            if e.source in au_ids and e.target in au_ids:
                out[au_ids.index(e.source), au_ids.index(e.target)] = e.sign
        return out

    # ---------------------------------------------------------------- misc
    def to_networkx(self) -> nx.DiGraph:
        """A copy as a plain networkx DiGraph (node attr ``kind``; edge attrs sign, weight, provenance, ...)."""
        g = nx.DiGraph(name=self.name)
        for n in self.aus:
            g.add_node(n, kind="au")
        for c in self._class_order:
            g.add_node(c, kind="class")
        for e in self.edges():
            g.add_edge(e.source, e.target, **{k: v for k, v in e.to_dict().items() if k not in ("source", "target")})
        return g

    def copy(self, name: str | None = None) -> "AUGraph":
        """A deep copy (optionally renamed)."""
        out = AUGraph(self.name if name is None else name, _copy.deepcopy(self.meta))
        out._g = self._g.copy()
        out._class_order = list(self._class_order)
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AUGraph):
            return NotImplemented
        return (
            self.name == other.name
            and self.meta == other.meta
            and self.aus == other.aus
            and self.classes == other.classes
            and self.edges() == other.edges()
        )

    def __repr__(self) -> str:
        return (
            f"AUGraph({self.name!r}: {len(self.aus)} AUs, {len(self.classes)} classes, "
            f"{len(self.class_edges())} AU->class edges, {len(self.au_edges())} AU->AU edges)"
        )

    def provenance_counts(self) -> dict[str, int]:
        """How many edges carry each provenance tag."""
        counts: dict[str, int] = {}
        for e in self.edges():
            counts[e.provenance] = counts.get(e.provenance, 0) + 1
        return dict(sorted(counts.items()))


def graph_from_edges(name: str, edges: Iterable[tuple], classes: Iterable[str] = (), aus: Iterable = (),
                     meta=None) -> AUGraph:
    """Build a graph from ``(source, target, sign[, weight[, provenance]])`` tuples."""
    g = AUGraph(name, meta)
    for c in classes:
        g.add_class(c)
    for a in aus:
        g.add_au(a)
    for e in edges:
        g.add_edge(*e)
    return g
