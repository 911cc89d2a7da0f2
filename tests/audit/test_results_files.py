"""The committed experiment results (``audits/results/<name>/``) and the docs tables that quote them.

Each results folder holds what ``facr experiment run audits/<name>.yaml`` wrote (``results.json``,
``results.md``) and ``provenance.json`` (the command, the commit, the machine, the wall time). The
markdown must be exactly what the renderer makes of the JSON, and every docs table quoted from a
results file (between ``<!-- results: PATH -->`` and ``<!-- /results -->``, see audits/README.md) must
be lines of that file, verbatim and in order: no table can drift from the numbers it claims to show.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from facr.audit.experiment import render_results

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "audits" / "results"
# the benchmark twins whose results must be committed (the demo's folders are checked alike when present)
TWINS = ("synth_table1", "synth_table2", "synth_table4")
QUOTE = re.compile(r"^<!-- results: (?P<path>\S+) -->\n(?P<body>.*?)^<!-- /results -->$", re.M | re.S)
MARKER = re.compile(r"^<!-- /?results\b", re.M)


def result_folders() -> list[Path]:
    return sorted(p.parent for p in RESULTS.glob("*/results.json"))


def quotes(text: str) -> list[tuple[str, list[str]]]:
    """Every ``(path, lines)`` quoted between results markers; an unpaired marker is an error."""
    found = [(m["path"], m["body"].strip("\n").split("\n")) for m in QUOTE.finditer(text)]
    if len(MARKER.findall(text)) != 2 * len(found):
        raise ValueError("a results marker without its partner "
                         "(open with <!-- results: PATH -->, close with <!-- /results -->)")
    return found


def quote_problem(path: str, lines: list[str], root: Path = ROOT) -> str | None:
    """None when ``lines`` occur in ``root/path`` as consecutive lines; else what is wrong."""
    source = root / path
    if not source.is_file():
        return f"{path}: no such file"
    if not lines or lines == [""]:
        return f"{path}: empty quote"
    have = source.read_text(encoding="utf-8").split("\n")
    n = len(lines)
    if any(have[i:i + n] == lines for i in range(len(have) - n + 1)):
        return None
    missing = next((line for line in lines if line not in have), None)
    return f"{path}: line not in the file: {missing!r}" if missing else f"{path}: lines out of order"


def test_every_twin_has_committed_results():
    names = {p.name for p in result_folders()}
    assert set(TWINS) <= names, f"missing {set(TWINS) - names}"


@pytest.mark.parametrize("folder", result_folders(), ids=lambda p: p.name)
def test_results_md_is_exactly_the_render_of_results_json(folder):
    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    assert render_results(results) == (folder / "results.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("folder", [p for p in result_folders() if p.name in TWINS], ids=lambda p: p.name)
def test_twin_results_name_their_experiment_command_and_commit(folder):
    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    prov = json.loads((folder / "provenance.json").read_text(encoding="utf-8"))
    assert results["experiment"] == folder.name
    assert results["source"] == f"audits/{folder.name}.yaml"
    assert results["n_cells_done"] == results["n_cells"], "a committed table from an unfinished experiment"
    assert f"facr experiment run audits/{folder.name}.yaml" in prov["command"]
    assert re.fullmatch(r"[0-9a-f]{40}", prov["commit"])
    assert prov["wall_seconds"] > 0 and prov["machine"]["cpu_cores"] >= 1 and prov["date_utc"]


def test_the_docs_quote_every_twin_and_every_quote_matches_its_file():
    found = [q for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
             for q in quotes(page.read_text(encoding="utf-8"))]
    problems = [p for path, lines in found if (p := quote_problem(path, lines))]
    assert not problems, problems
    quoted = {Path(path).parent.name for path, _ in found}
    assert set(TWINS) <= quoted, f"the docs quote no table of {set(TWINS) - quoted}"


def test_a_drifted_quote_is_caught(tmp_path):
    (tmp_path / "r.md").write_text("# x\n\n| arm | a |\n|---|---|\n| A | 0.500 ± 0.010 |\n| B | 0.400 |\n")
    good = "<!-- results: r.md -->\n| arm | a |\n|---|---|\n| A | 0.500 ± 0.010 |\n<!-- /results -->\n"
    [(path, lines)] = quotes(good)
    assert quote_problem(path, lines, tmp_path) is None
    [(path, lines)] = quotes(good.replace("0.500", "0.501"))
    assert quote_problem(path, lines, tmp_path) == "r.md: line not in the file: '| A | 0.501 ± 0.010 |'"
    [(path, lines)] = quotes("<!-- results: r.md -->\n| B | 0.400 |\n| A | 0.500 ± 0.010 |\n<!-- /results -->\n")
    assert quote_problem(path, lines, tmp_path) == "r.md: lines out of order"
    [(path, lines)] = quotes("<!-- results: gone.md -->\n| A |\n<!-- /results -->\n")
    assert quote_problem(path, lines, tmp_path) == "gone.md: no such file"
    with pytest.raises(ValueError, match="without its partner"):
        quotes("<!-- results: r.md -->\n| A | 0.500 ± 0.010 |\n")


def test_an_audited_only_arm_stands_beside_every_training_seed():
    # EmoLA's file / the frozen LLM are audited once (deterministic); each FACR seed is paired with that figure
    def arm(per_seed):
        return {"graph_causal_agreement": {"mean": 0.5, "std_subjects": None, "n_subjects": 12, "seed_sd_mean": None,
                                           "pooled_mean": None, "pooled_std_seeds": None, "per_seed": per_seed}}

    results = {"experiment": "t4", "folds": "fixed", "seeds": [0, 1, 2], "n_cells_done": 4, "n_cells": 4,
               "metrics": ["graph_causal_agreement"], "comparisons": [{"a": "FACR", "b": "EmoLA", "metrics": {}}],
               "arms": {"FACR": arm({"0": 0.90, "1": 0.60, "2": 0.80}), "EmoLA": arm({"0": 0.70})},
               "audited_only": ["EmoLA"]}
    md = render_results(results)
    assert "| FACR vs EmoLA | graph causal agreement | +0.200 | -0.100 | +0.100 | **mixed** (higher in 2/3) |" in md
    # a trained arm with one seed's figure is not stretched over the others: no seed-by-seed row
    results["audited_only"] = []
    assert "| FACR vs EmoLA |" not in render_results(results)


def test_results_md_keeps_the_experiment_files_order_through_canonical_json():
    import json as _json

    from facr.utils import dumps_json

    def arm(v):
        return {"accuracy": {"mean": v, "std_subjects": None, "n_subjects": 2, "seed_sd_mean": None,
                             "pooled_mean": None, "pooled_std_seeds": None}}

    results = {"experiment": "x", "folds": "fixed", "seeds": [0], "n_cells_done": 2, "n_cells": 2,
               "metrics": ["accuracy"], "arms": {"zeta": arm(0.9), "alpha": arm(0.1)},
               "paper": {"zeta": {"accuracy": 0.5}, "alpha": {"accuracy": 0.4}},
               "per_class": {"zeta": {"sadness": {"n": 3, "recall": 0.2, "agreement": 0.7},
                                      "anger": {"n": 4, "recall": 0.3, "agreement": 0.8}}},
               "order": {"arms": ["zeta", "alpha"], "paper": ["zeta", "alpha"], "per_class": ["zeta"],
                         "classes": {"zeta": ["sadness", "anger"]}, "per_class_metrics": ["n", "recall", "agreement"]}}
    md = render_results(_json.loads(dumps_json(results)))  # sorted keys: alpha before zeta, anger before sadness
    assert md == render_results(results)
    assert md.index("| zeta | 0.900 |") < md.index("| alpha | 0.100 |")
    assert md.index("| zeta | 0.500 |") < md.index("| alpha | 0.400 |")
    assert md.index("| sadness | 3 | 0.200 | 0.700 |") < md.index("| anger | 4 | 0.300 | 0.800 |")
    assert "| class | n | recall | agreement |" in md
