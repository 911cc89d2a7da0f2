"""The chosen top-level API (``import facr``) and the docs' worked example, run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import facr

ROOT = Path(__file__).resolve().parents[1]


def test_every_public_name_resolves_to_the_object_of_its_module():
    import importlib

    for name in facr.__all__:
        if name == "__version__":
            continue
        module, attr = facr._API[name] if isinstance(facr._API[name], tuple) else (facr._API[name], name)
        assert getattr(facr, name) is getattr(importlib.import_module(module), attr), name
    assert facr.run_audit.__name__ == "audit" and facr.audit.__name__ == "facr.audit"  # the subpackage
    assert set(facr.__all__) <= set(dir(facr))


def test_import_facr_loads_no_torch_and_an_unknown_name_is_an_attribute_error():
    code = ("import sys, facr\nassert 'torch' not in sys.modules\n"
            "try:\n    facr.nonsense\nexcept AttributeError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "module 'facr' has no attribute 'nonsense'"


def test_the_docs_python_example_prints_what_the_page_says():
    page = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?)```", page, re.S).group(1)
    expected = re.search(r"It prints:\n\n```text\n(.*?)```", page, re.S).group(1)
    assert len(code.strip().splitlines()) <= 20
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout == expected


def test_the_docs_hook_points_links_at_pages_and_leaves_no_dangling_one():
    sys.path.insert(0, str(ROOT / "docs" / "hooks"))
    try:
        from generate import _copied, _rewrite
    finally:
        sys.path.pop(0)
    pages = _copied()
    assert pages["README.md"] == "index.md"
    assert pages["audits/results/synth_table1/results.md"] == "results/synth_table1.md"
    text = ("[spec](SPEC.md), [t](../audits/results/synth_table1/results.md#x), [c](../facr/cli.py), "
            "![p](../docs/chat.png)")
    assert _rewrite(text, "graphs/README.md", "graph-swap.md", pages) == (
        "[spec](graph-format.md), [t](results/synth_table1.md#x), c (`facr/cli.py`), ![p](chat.png)")
    assert _rewrite("[x](docs/maps.md)", "README.md", "index.md", pages) == "[x](maps.md)"
