"""Differences between two graphs: added and removed edges, sign flips, reweighting."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from facr.graph.core import AUGraph, Edge


@dataclass
class GraphDiff:
    """What changes from graph ``a`` to graph ``b``."""

    a: str
    b: str
    added: list[Edge] = field(default_factory=list)
    removed: list[Edge] = field(default_factory=list)
    sign_flips: list[tuple[Edge, Edge]] = field(default_factory=list)
    changed: list[tuple[Edge, Edge]] = field(default_factory=list)  # same sign, other weight/provenance
    nodes_added: list[str] = field(default_factory=list)
    nodes_removed: list[str] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.removed or self.sign_flips or self.changed
                    or self.nodes_added or self.nodes_removed)

    def to_dict(self) -> dict[str, Any]:
        def pair(x: Edge, y: Edge) -> dict[str, Any]:
            return {"source": x.source, "target": x.target, "a": x.to_dict(), "b": y.to_dict()}

        return {
            "a": self.a,
            "b": self.b,
            "identical": self.is_empty,
            "added": [e.to_dict() for e in self.added],
            "removed": [e.to_dict() for e in self.removed],
            "sign_flips": [pair(x, y) for x, y in self.sign_flips],
            "changed": [pair(x, y) for x, y in self.changed],
            "nodes_added": self.nodes_added,
            "nodes_removed": self.nodes_removed,
        }

    def format(self) -> str:
        """Human-readable lines: ``+`` added, ``-`` removed, ``!`` sign flip, ``~`` changed."""

        def s(sign: int) -> str:
            return "+" if sign > 0 else "-"

        lines = [f"{self.a} -> {self.b}: {len(self.added)} added, {len(self.removed)} removed, "
                 f"{len(self.sign_flips)} sign flips, {len(self.changed)} changed"]
        lines += [f"  node + {n}" for n in self.nodes_added] + [f"  node - {n}" for n in self.nodes_removed]
        lines += [f"  + {e.source} -> {e.target} ({s(e.sign)}, w={e.weight:g}, {e.provenance})" for e in self.added]
        lines += [f"  - {e.source} -> {e.target} ({s(e.sign)}, w={e.weight:g}, {e.provenance})" for e in self.removed]
        lines += [f"  ! {x.source} -> {x.target} sign {s(x.sign)} -> {s(y.sign)}" for x, y in self.sign_flips]
        lines += [
            f"  ~ {x.source} -> {x.target} w={x.weight:g} -> {y.weight:g}, {x.provenance} -> {y.provenance}"
            for x, y in self.changed
        ]
        return "\n".join(lines)


def diff(a: AUGraph, b: AUGraph) -> GraphDiff:
    """Compare ``a`` with ``b`` edge by edge (keyed by source and target)."""
    ea = {(e.source, e.target): e for e in a.edges()}
    eb = {(e.source, e.target): e for e in b.edges()}
    out = GraphDiff(a.name, b.name)
    out.added = [eb[k] for k in eb if k not in ea]
    out.removed = [ea[k] for k in ea if k not in eb]
    for k in ea.keys() & eb.keys():
        x, y = ea[k], eb[k]
        if x.sign != y.sign:
            out.sign_flips.append((x, y))
        elif abs(x.weight - y.weight) > 1e-12 or x.provenance != y.provenance:
            out.changed.append((x, y))
    order = {k: i for i, k in enumerate(list(ea) + [k for k in eb if k not in ea])}
    out.sign_flips.sort(key=lambda p: order[(p[0].source, p[0].target)])
    out.changed.sort(key=lambda p: order[(p[0].source, p[0].target)])
    na, nb = set(a.aus) | set(a.classes), set(b.aus) | set(b.classes)
    out.nodes_added = [n for n in b.aus + b.classes if n not in na]
    out.nodes_removed = [n for n in a.aus + a.classes if n not in nb]
    return out
