"""The rules of the facr-graph format (graphs/SPEC.md), in one place.

:func:`validate_document` checks a parsed JSON document and raises
:class:`~facr.errors.GraphFormatError` naming the source and the *first* problem.
The small ``problem_*`` checks return a message or ``None``; :class:`~facr.graph.AUGraph`
uses the same checks when edges are added in code, so a graph built in Python and one
read from a file obey the same rules.
"""

from __future__ import annotations

import math
import re
from typing import Any

import networkx as nx

from facr import au as au_vocab
from facr.errors import GraphFormatError

FORMAT = "facr-graph"
VERSION = 1
PROVENANCES = ("induced-l1", "neighborhood", "pspi", "emfacs", "verified", "manual", "permuted", "truth")
KINDS = ("au", "class")

_TOP_REQUIRED = ("format", "version", "name", "nodes", "edges")
_TOP_OPTIONAL = ("meta",)
_NODE_KEYS = ("id", "kind")
_EDGE_REQUIRED = ("source", "target", "sign", "weight", "provenance")
_EDGE_OPTIONAL = ("stability", "note")
_CLASS_ID = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")


def problem_au_id(value: Any) -> str | None:
    """Why ``value`` is not a canonical AU id (``AU4``), or None."""
    if not isinstance(value, str):
        return f"AU id must be a string, got {value!r}"
    if not au_vocab.is_au(value):
        return f"unknown AU {value!r} (not a FACS main action unit)"
    canonical = au_vocab.canonical(value)
    if canonical != value:
        return f"AU id {value!r} is not canonical: write {canonical!r}"
    return None


def problem_class_id(value: Any) -> str | None:
    """Why ``value`` is not a class id (lowercase word such as ``happiness``), or None."""
    if not isinstance(value, str) or not value:
        return f"class id must be a non-empty string, got {value!r}"
    if not _CLASS_ID.match(value) or not re.search(r"[a-z]", value):
        return f"class id {value!r} must be lowercase letters, digits, '_' or '-' (e.g. 'happiness')"
    if au_vocab.is_au(value):
        return f"class id {value!r} reads as an action unit"
    return None


def problem_sign(value: Any) -> str | None:
    """Why ``value`` is not a polarity s ∈ {+1, −1}, or None."""
    if isinstance(value, bool) or not isinstance(value, int) or value not in (1, -1):
        return f"sign must be 1 or -1, got {value!r}"
    return None


def problem_weight(value: Any) -> str | None:
    """Why ``value`` is not a finite weight ≥ 0, or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"weight must be a number, got {value!r}"
    if not math.isfinite(value):
        return f"weight must be finite, got {value!r}"
    if value < 0:
        return f"weight must be >= 0, got {value!r}"
    return None


def problem_provenance(value: Any) -> str | None:
    """Why ``value`` is not a known provenance tag, or None."""
    if value not in PROVENANCES:
        return f"provenance must be one of {', '.join(PROVENANCES)}; got {value!r}"
    return None


def problem_stability(value: Any) -> str | None:
    """Why ``value`` is not a stability score in [0, 1], or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0.0 <= value <= 1.0):
        return f"stability must be a number in [0, 1], got {value!r}"
    return None


def find_au_cycle(edges: list[tuple[str, str]]) -> list[str] | None:
    """A cycle among AU→AU edges as a node list (first node repeated at the end), or None."""
    g = nx.DiGraph(edges)
    try:
        cycle = nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        return None
    return [u for u, _ in cycle] + [cycle[0][0]]


def _unknown_keys(obj: dict, allowed: tuple[str, ...]) -> list[str]:
    return sorted(k for k in obj if k not in allowed)


def _problems(doc: Any):
    """Yield the problems of ``doc`` in reading order (the caller reports the first)."""
    if not isinstance(doc, dict):
        yield f"top level must be a JSON object, got {type(doc).__name__}"
        return
    if doc.get("format") != FORMAT:
        yield f"'format' must be {FORMAT!r}, got {doc.get('format')!r}"
        return
    version = doc.get("version")
    if version != VERSION or isinstance(version, bool):
        yield f"unsupported version {version!r}: this facr reads facr-graph version {VERSION}"
        return
    for key in _TOP_REQUIRED:
        if key not in doc:
            yield f"missing required key {key!r}"
            return
    extra = _unknown_keys(doc, _TOP_REQUIRED + _TOP_OPTIONAL)
    if extra:
        yield f"unknown top-level key(s): {', '.join(extra)}"
    if not isinstance(doc["name"], str):
        yield f"'name' must be a string, got {doc['name']!r}"
    if "meta" in doc and not isinstance(doc["meta"], dict):
        yield f"'meta' must be an object, got {type(doc['meta']).__name__}"
    nodes, edges = doc["nodes"], doc["edges"]
    if not isinstance(nodes, list):
        yield "'nodes' must be a list"
        return
    if not isinstance(edges, list):
        yield "'edges' must be a list"
        return

    kinds: dict[str, str] = {}
    for i, node in enumerate(nodes):
        where = f"nodes[{i}]"
        if not isinstance(node, dict):
            yield f"{where}: must be an object, got {node!r}"
            continue
        missing = [k for k in _NODE_KEYS if k not in node]
        if missing:
            yield f"{where}: missing {', '.join(map(repr, missing))}"
            continue
        extra = _unknown_keys(node, _NODE_KEYS)
        if extra:
            yield f"{where}: unknown key(s): {', '.join(extra)}"
        node_id, kind = node["id"], node["kind"]
        if kind not in KINDS:
            yield f"{where}: kind must be 'au' or 'class', got {kind!r}"
            continue
        problem = problem_au_id(node_id) if kind == "au" else problem_class_id(node_id)
        if problem:
            yield f"{where}: {problem}"
            continue
        if node_id in kinds:
            yield f"{where}: duplicate node id {node_id!r}"
            continue
        kinds[node_id] = kind

    seen: set[tuple[str, str]] = set()
    au_edges: list[tuple[str, str]] = []
    for i, edge in enumerate(edges):
        where = f"edges[{i}]"
        if not isinstance(edge, dict):
            yield f"{where}: must be an object, got {edge!r}"
            continue
        missing = [k for k in _EDGE_REQUIRED if k not in edge]
        if missing:
            yield f"{where}: missing {', '.join(map(repr, missing))}"
            continue
        src, dst = edge["source"], edge["target"]
        where = f"edges[{i}] ({src} -> {dst})"
        extra = _unknown_keys(edge, _EDGE_REQUIRED + _EDGE_OPTIONAL)
        if extra:
            yield f"{where}: unknown key(s): {', '.join(extra)}"
        for end, name in ((src, "source"), (dst, "target")):
            if not isinstance(end, str) or end not in kinds:
                yield f"{where}: {name} {end!r} is not a declared node"
                break
        else:
            if kinds[src] != "au":
                yield (f"{where}: edges must start at an AU node; {src!r} is a class "
                       "(class -> AU edges are not allowed)")
            for check, key in ((problem_sign, "sign"), (problem_weight, "weight"), (problem_provenance, "provenance")):
                problem = check(edge[key])
                if problem:
                    yield f"{where}: {problem}"
            if "stability" in edge:
                problem = problem_stability(edge["stability"])
                if problem:
                    yield f"{where}: {problem}"
            if "note" in edge and not isinstance(edge["note"], str):
                yield f"{where}: note must be a string"
            if (src, dst) in seen:
                yield f"{where}: duplicate edge"
            seen.add((src, dst))
            if kinds[src] == "au" and kinds[dst] == "au":
                au_edges.append((src, dst))
    cycle = find_au_cycle(au_edges)
    if cycle:
        yield f"AU->AU edges form a cycle: {' -> '.join(cycle)} (the AU part must be acyclic)"


def validate_document(doc: Any, source: str = "<graph>") -> None:
    """Raise :class:`GraphFormatError` (``source: problem``) for the first broken rule of ``doc``."""
    for problem in _problems(doc):
        raise GraphFormatError(source, problem)


def problems(doc: Any) -> list[str]:
    """Every problem of ``doc`` (empty when valid), for reports that want them all."""
    return list(_problems(doc))
