"""Every `facr au` / `facr graph` command, run as a user runs it."""

import json
import subprocess
import sys

import numpy as np
import pytest

from facr.graph import emfacs_graph, load_graph


def test_validate_accepts_the_shipped_graphs(run_cli, repo):
    code, out, err = run_cli("graph", "validate", repo / "graphs" / "emfacs.json")
    assert code == 0 and err == ""
    assert "valid facr-graph v1 'emfacs': 17 AUs, 8 classes, 33 AU->class" in out
    code, out, _ = run_cli("graph", "validate", repo / "graphs" / "pspi.json", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["valid"] is True and doc["n_class_edges"] == 6 and doc["provenance"] == {"pspi": 6}


def test_validate_reports_a_bad_file_in_one_line_and_exits_2(run_cli, tmp_path, repo):
    bad = tmp_path / "bad.json"
    bad.write_text((repo / "graphs" / "pspi.json").read_text().replace('"sign": 1', '"sign": 0', 1))
    code, out, err = run_cli("graph", "validate", bad)
    assert code == 2 and out == ""
    assert err == f"facr: {bad}: edges[0] (AU4 -> pain): sign must be 1 or -1, got 0\n"
    code, out, err = run_cli("graph", "validate", bad, "--json")
    assert code == 2 and json.loads(out)["valid"] is False and "sign must be 1 or -1" in json.loads(out)["error"]


def test_the_real_entry_point_exits_2_without_a_traceback(tmp_path):
    bad = tmp_path / "cut.json"
    bad.write_text('{"format": "facr-graph", "version": 1, "name": "x", "nodes": [')
    proc = subprocess.run([sys.executable, "-m", "facr", "graph", "show", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"facr: {bad}: not valid JSON") and proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr


def test_show_lists_class_parents_with_signs(run_cli, repo):
    code, out, _ = run_cli("graph", "show", repo / "graphs" / "emfacs.json")
    assert code == 0
    assert "happiness <- +AU6 Cheek Raiser, +AU12 Lip Corner Puller" in out
    code, out, _ = run_cli("graph", "show", "emfacs", "--json")
    doc = json.loads(out)
    assert doc["classes"]["sadness"] == {"AU1": 1, "AU4": 1, "AU15": 1}
    assert doc["n_aus"] == 17 and doc["au_edges"] == []


@pytest.fixture
def emotion_csv(tmp_path):
    """A table drawn from a known structure: happiness <- AU6, AU12; anger <- AU4, AU23; neutral baseline."""
    rng = np.random.default_rng(0)
    rows = ["AU04_r,AU06_r,AU12_r,AU23_r,AU25_r,emotion"]
    for i in range(900):
        cls = ["happiness", "anger", "neutral"][i % 3]
        p = {"happiness": [0.1, 0.85, 0.85, 0.1, 0.2], "anger": [0.85, 0.1, 0.1, 0.85, 0.2],
             "neutral": [0.1, 0.1, 0.1, 0.1, 0.2]}[cls]
        on = rng.random(5) < p
        rows.append(",".join(f"{rng.uniform(1, 5) if o else 0:.2f}" for o in on) + f",{cls}")
    path = tmp_path / "faces.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_induce_writes_a_valid_graph_and_reports_it(run_cli, emotion_csv, tmp_path):
    out_path = tmp_path / "induced.json"
    code, out, err = run_cli("graph", "induce", emotion_csv, "--label-column", "emotion", "--out", out_path,
                             "--seed", 0, "--bootstrap", 20, "--fill", "emfacs", "--json")
    assert code == 0, err
    summary = json.loads(out)
    graph = load_graph(out_path)
    assert graph.parents("happiness") == {"AU6": 1, "AU12": 1}
    assert graph.parents("anger") == {"AU4": 1, "AU23": 1}
    assert graph.parents("neutral") == {}
    assert summary["contrast"] == "one-vs-neutral" and summary["n_rows"] == 900
    assert summary["provenance"]["induced-l1"] == 4
    code, out, _ = run_cli("graph", "induce", emotion_csv, "--label-column", "emotion", "--out", out_path,
                           "--bootstrap", 5, "--no-au-edges", "--overwrite")
    assert code == 0 and out.startswith(f"wrote {out_path}: 4 AU->class and 0 AU->AU edges")


def test_induce_bad_table_exits_2_and_writes_nothing(run_cli, tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("AU4,AU12,emotion\n1,zero,happiness\n")
    out_path = tmp_path / "g.json"
    code, out, err = run_cli("graph", "induce", table, "--label-column", "emotion", "--out", out_path)
    assert code == 2 and err == f"facr: {table}: line 2: column 'AU12': not a number: 'zero'\n"
    assert not out_path.exists()
    code, _, err = run_cli("graph", "induce", table, "--label-column", "emotion", "--out", out_path, "--threshold", 2)
    assert code == 2 and "stability_threshold must be in [0, 1]" in err


def test_permute_then_diff_shows_the_corruption(run_cli, repo, tmp_path):
    permuted = tmp_path / "permuted.json"
    code, out, _ = run_cli("graph", "permute", repo / "graphs" / "emfacs.json", "--seed", 1, "--out", permuted)
    assert code == 0 and out.startswith(f"wrote {permuted}: 'emfacs-permuted-s1'")
    graph = load_graph(permuted)
    assert {e.provenance for e in graph.class_edges()} == {"permuted"}
    code, out, _ = run_cli("graph", "diff", repo / "graphs" / "emfacs.json", permuted, "--json")
    d = json.loads(out)
    assert code == 0 and d["identical"] is False and len(d["added"]) > 0 and len(d["removed"]) > 0
    code, out, _ = run_cli("graph", "diff", "emfacs", repo / "graphs" / "emfacs.json", "--exit-code")
    assert code == 0 and "0 added, 0 removed, 0 sign flips, 0 changed" in out
    code, _, _ = run_cli("graph", "diff", "emfacs", permuted, "--exit-code")
    assert code == 1
    code, _, err = run_cli("graph", "permute", "pspi", "--seed", 0, "--out", tmp_path / "p.json")
    assert code == 2 and err.startswith("facr: pspi: graph 'pspi' has 1 class")


def test_draw_and_export(run_cli, tmp_path):
    code, out, _ = run_cli("graph", "draw", "emfacs", "--out", tmp_path / "g.png")
    assert code == 0 and (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, _, err = run_cli("graph", "draw", "emfacs", "--out", tmp_path / "g.txt")
    assert code == 2 and "must end in .png, .svg or .pdf" in err
    code, _, _ = run_cli("graph", "export", "emfacs", "--out", tmp_path / "mine.json")
    assert code == 0 and load_graph(tmp_path / "mine.json") == emfacs_graph()


def test_au_list_and_parse(run_cli):
    code, out, _ = run_cli("au", "list", "--json")
    doc = json.loads(out)
    assert code == 0 and len(doc["aus"]) == 30 and doc["pspi"] == ["AU4", "AU6", "AU7", "AU9", "AU10", "AU43"]
    code, out, _ = run_cli("au", "parse", "AU04_r", "1. AU4 - Brow Lowerer", "the cheek raiser")
    assert code == 0 and out.splitlines() == [
        "'AU04_r' -> AU4 (Brow Lowerer)", "'1. AU4 - Brow Lowerer' -> AU4 (Brow Lowerer)",
        "'the cheek raiser' -> AU6 (Cheek Raiser)"]
    code, _, err = run_cli("au", "parse", "AU99")
    assert code == 2 and err == "facr: not a FACS main action unit: 'AU99' (AU99)\n"


@pytest.mark.parametrize("verb", ["validate", "show", "induce", "permute", "diff", "draw", "export"])
def test_every_graph_command_help_shows_an_example(verb, capsys):
    from facr.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["graph", verb, "--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0 and any(f"{head}:\n  facr graph {verb}" in out for head in ("example", "examples"))
