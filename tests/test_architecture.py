"""The shape of the code, enforced: no import cycles in facr/, no module over 700 lines, no function
over 100 lines (parsers included). (The commands that must start fast and import no torch:
tests/test_cli_lazy.py.)"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import networkx as nx

FACR = Path(__file__).resolve().parents[1] / "facr"
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 700, 100


def _modules() -> dict[str, Path]:
    out = {}
    for path in FACR.rglob("*.py"):
        parts = list(path.relative_to(FACR.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def import_graph() -> nx.DiGraph:
    """facr module → the facr modules it imports, at any depth of its code (a function's import is
    an import too); an import of a module's own package (which Python runs first anyway) and imports
    for annotations only (``if TYPE_CHECKING:``) are left out."""
    modules = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = nx.DiGraph()
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        graph.add_node(module)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                       and ast.unparse(block.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
                       for stmt in block.body for n in ast.walk(stmt)}
        for node in ast.walk(tree):
            if id(node) in typing_only:  # an import for annotations only runs no code
                continue
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                names = [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                target = resolve(name) if name.startswith("facr") else None
                if target and target != module and not module.startswith(target + "."):
                    graph.add_edge(module, target)
    return graph


def test_facr_has_no_import_cycle():
    cycles = sorted(nx.simple_cycles(import_graph(), length_bound=6), key=len)
    assert not cycles, "import cycles: " + "; ".join(" → ".join([*c, c[0]]) for c in cycles[:10])


def test_the_cycle_finder_finds_a_cycle(tmp_path, monkeypatch):
    pkg = tmp_path / "facr"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from facr.b import g\n")
    (pkg / "b.py").write_text("from facr import a\n")
    monkeypatch.setattr(sys.modules[__name__], "FACR", pkg)
    assert list(nx.simple_cycles(import_graph())) in ([["facr.a", "facr.b"]], [["facr.b", "facr.a"]])


def test_no_module_is_over_700_lines_and_no_function_over_100():
    too_long = {}
    for module, path in sorted(_modules().items()):
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > MAX_MODULE_LINES:
            too_long[module] = text.count("\n")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    too_long[f"{module}.{node.name}"] = n
    assert too_long == {}
