"""Reading and writing facr-graph v1 files (graphs/SPEC.md).

Writing is canonical (``indent=2``, sorted keys, AU nodes by number then classes in their
order, edges sorted) and atomic (temporary file + ``os.replace``). Reading a bad file
raises :class:`~facr.errors.GraphFormatError` naming the file and the first problem.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from facr.errors import GraphFormatError
from facr.graph import validate as rules
from facr.graph.core import AUGraph
from facr.utils import dumps_json, loads_json, read_user_text, write_json

BUILTIN_GRAPHS = ("emfacs", "pspi")


def graph_to_dict(graph: AUGraph) -> dict[str, Any]:
    """The facr-graph v1 document of ``graph``."""
    nodes = [{"id": a, "kind": "au"} for a in graph.aus] + [{"id": c, "kind": "class"} for c in graph.classes]
    return {
        "format": rules.FORMAT,
        "version": rules.VERSION,
        "name": graph.name,
        "nodes": nodes,
        "edges": [e.to_dict() for e in graph.edges()],
        "meta": graph.meta,
    }


def graph_from_dict(doc: Any, source: str = "<graph>") -> AUGraph:
    """Build an :class:`AUGraph` from a facr-graph document, validating it first."""
    rules.validate_document(doc, source)
    graph = AUGraph(doc["name"], doc.get("meta", {}))
    for node in doc["nodes"]:
        (graph.add_au if node["kind"] == "au" else graph.add_class)(node["id"])
    for e in doc["edges"]:
        graph.add_edge(
            e["source"], e["target"], e["sign"], e["weight"], e["provenance"],
            stability=e.get("stability"), note=e.get("note"),
        )
    return graph


def dumps_graph(graph: AUGraph) -> str:
    """The canonical text of ``graph`` as a facr-graph file."""
    return dumps_json(graph_to_dict(graph))


MAX_GRAPH_BYTES = 16 * 2**20  # a graph of every FACS AU and a thousand classes is under 2 MB


def load_graph(path: str | os.PathLike) -> AUGraph:
    """Read a facr-graph file. Raises :class:`GraphFormatError` (file: first problem).

    Files over :data:`MAX_GRAPH_BYTES` and JSON nested deeper than :data:`facr.utils.MAX_JSON_DEPTH`
    are refused before they can exhaust memory or the interpreter's stack (the chat reads uploads
    through here too).
    """
    path = Path(path)
    text = read_user_text(path, GraphFormatError, "a facr-graph file", MAX_GRAPH_BYTES)
    try:
        doc = loads_json(text)
    except ValueError as exc:  # syntax, NaN / Infinity literals, nesting
        raise GraphFormatError(path, str(exc)) from None
    return graph_from_dict(doc, str(path))


def save_graph(graph: AUGraph, path: str | os.PathLike) -> Path:
    """Write ``graph`` canonically and atomically; returns the path."""
    path = Path(path)
    doc = graph_to_dict(graph)
    _check_meta(doc["meta"], path)
    write_json(path, doc)
    return path


def _check_meta(meta: Any, path: Path, where: str = "meta") -> None:
    if isinstance(meta, float) and not math.isfinite(meta):
        raise GraphFormatError(path, f"{where}: {meta!r} cannot be written as JSON")
    if isinstance(meta, dict):
        for k, v in meta.items():
            _check_meta(v, path, f"{where}.{k}")
    elif isinstance(meta, (list, tuple)):
        for i, v in enumerate(meta):
            _check_meta(v, path, f"{where}[{i}]")


def resolve_graph(spec: str | os.PathLike | AUGraph, also: tuple[str, ...] = ()) -> AUGraph:
    """A graph from a file path, or a built-in name (``emfacs``, ``pspi``) when no such file exists.
    ``also``: the other names the caller takes (``truth``, ``induced``, …), listed when nothing fits."""
    if isinstance(spec, AUGraph):
        return spec
    path = Path(spec)
    if not path.exists() and str(spec) in BUILTIN_GRAPHS:
        from facr.graph.prototypes import builtin_graph

        return builtin_graph(str(spec))
    if not path.exists():
        raise GraphFormatError(path, f"no such file (or a name: {', '.join((*BUILTIN_GRAPHS, *also))})")
    return load_graph(path)
