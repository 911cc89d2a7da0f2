"""`facr experiment run`: cells, resumability, cache checks, statistics on the subject unit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from facr.data.synth import SynthConfig, write_synth


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exp") / "synth"
    write_synth(out, SynthConfig(n=96, seed=0, subjects=8, size=32), workers=1)
    return out


def _write(path: Path, data: Path, **over) -> Path:
    doc = {
        "name": "tiny",
        "train_config": None,
        "data": {"path": str(data)},
        "overrides": {"data.image_size": 32, "encoder.arch": "resnet-tiny", "graph": "truth", "epochs": 1,
                      "batch_size": 32, "data.val_split": None},
        "arms": [{"name": "FACR", "overrides": {}}, {"name": "no-faith", "overrides": {"faith": "off"}}],
        "seeds": [0, 1],
        "folds": {"kind": "loso", "max_folds": 3},
        "audit": {"split": "all", "oracle": False},
        "metrics": ["accuracy", "cf_sensitivity", "cf_invariance", "graph_causal_agreement"],
        "comparisons": [["FACR", "no-faith"]],
        "per_class": ["FACR"],
        "paper": {"FACR": {"accuracy": 0.8}},
        "out": str(path.parent / "exp-out"),
        "bootstrap": 500,
    }
    doc.update(over)
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    return path


def test_loso_experiment_trains_every_cell_pairs_subjects_and_resumes_without_retraining(data, tmp_path, run_cli):
    spec = _write(tmp_path / "tiny.yaml", data)
    code, out, err = run_cli("experiment", "run", spec, "--no-progress")
    assert code == 0, err
    res = json.loads((tmp_path / "exp-out" / "results.json").read_text())
    assert res["n_cells"] == 2 * 2 * 3 and res["n_cells_done"] == 12  # arms x seeds x folds
    # LOSO: each fold audits exactly its held-out subject; rows are (arm, seed, fold, subject)
    assert {(r["fold"], r["subject"]) for r in res["rows"]} == {("S1", "S1"), ("S2", "S2"), ("S3", "S3")}
    assert len(res["rows"]) == 12
    # the arm's figure is the mean over subjects of the per-subject mean over seeds
    rows = [r for r in res["rows"] if r["arm"] == "FACR"]
    per_subject = {s: sum(r["accuracy"] for r in rows if r["subject"] == s) / 2 for s in ("S1", "S2", "S3")}
    assert res["arms"]["FACR"]["accuracy"]["mean"] == pytest.approx(sum(per_subject.values()) / 3)
    assert res["arms"]["FACR"]["accuracy"]["n_subjects"] == 3
    comp = res["comparisons"][0]
    assert comp["a"] == "FACR" and comp["metrics"]["accuracy"]["n_units"] == 3
    for t in comp["metrics"].values():  # 3 subjects: a two-sided signed-rank p can never be below 0.25
        assert t["wilcoxon_p"] is None or t["wilcoxon_p"] >= 0.25
        assert t["min_attainable_p"] is None or t["min_attainable_p"] >= 0.25
    ps = [t["wilcoxon_p"] for t in comp["metrics"].values() if t["wilcoxon_p"] is not None]
    holm = [t["wilcoxon_p_holm"] for t in comp["metrics"].values() if t["wilcoxon_p"] is not None]
    assert all(h >= p for h, p in zip(holm, ps))
    md = (tmp_path / "exp-out" / "results.md").read_text()
    assert "| FACR |" in md and "## The paper's figures" in md and "## Per class: FACR" in md
    assert "# tiny" in out
    # each seed's figure is that seed's cells' pooled figure (read from their audit.json), averaged over folds
    cells = tmp_path / "exp-out" / "cells" / "facr"
    for seed in (0, 1):
        pooled = [json.loads(f.read_text())["accuracy"] for f in sorted((cells / f"seed{seed}").glob("*/audit.json"))]
        assert len(pooled) == 3
        assert res["arms"]["FACR"]["accuracy"]["per_seed"][str(seed)] == pytest.approx(sum(pooled) / 3)
    assert "## Across training seeds (2)" in md and "| FACR vs no-faith | accuracy |" in md
    # a second run reuses every cell: nothing is trained or audited again
    model_file = tmp_path / "exp-out" / "cells" / "facr" / "seed0" / "loso-s1" / "model" / "model.safetensors"
    before = model_file.stat().st_mtime_ns
    code, _, err = run_cli("experiment", "run", spec, "--no-progress")
    assert code == 0 and "(12 done, 0 to run)" in err and model_file.stat().st_mtime_ns == before


def test_a_cached_cell_trained_with_other_settings_is_refused(data, tmp_path, run_cli):
    spec = _write(tmp_path / "tiny.yaml", data, seeds=[0], folds={"kind": "loso", "max_folds": 1},
                  comparisons=[], per_class=[])
    assert run_cli("experiment", "run", spec, "--no-progress")[0] == 0
    _write(tmp_path / "tiny.yaml", data, seeds=[0], folds={"kind": "loso", "max_folds": 1}, comparisons=[],
           per_class=[], arms=[{"name": "FACR", "overrides": {"loss.lambda_i": 2.0}},
                               {"name": "no-faith", "overrides": {"faith": "off"}}])
    code, out, err = run_cli("experiment", "run", spec, "--no-progress")
    assert code == 2 and "trained with other settings (loss" in err and err.count("\n") == 1


def test_a_benchmark_folder_drawn_otherwise_than_data_synth_is_refused(data, tmp_path, run_cli):
    """data.synth describes the benchmark: a folder already at data.path is used only if it was drawn so."""
    synth = {"n": 96, "seed": 0, "subjects": 8, "size": 32}
    small = {"seeds": [0], "folds": {"kind": "loso", "max_folds": 1}, "comparisons": [], "per_class": [],
             "arms": [{"name": "FACR", "overrides": {}}]}
    for changed, needle in (({"renderer": 2}, "renderer 1 where data.synth asks 2"),
                            ({"seed": 4, "size": 64},
                             "seed 0 where data.synth asks 4, size 32 where data.synth asks 64")):
        spec = _write(tmp_path / "tiny.yaml", data, **small)
        doc = yaml.safe_load(spec.read_text())
        doc["data"]["synth"] = {**synth, **changed}
        spec.write_text(yaml.safe_dump(doc))
        code, _, err = run_cli("experiment", "run", spec, "--no-progress")
        assert code == 2 and needle in err and str(data) in err and err.count("\n") == 1, err
        assert not (tmp_path / "exp-out").exists()
    other = tmp_path / "not-synth"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    code, _, err = run_cli("experiment", "run", spec, "--no-progress", "--data", other)
    assert code == 2 and "is not the synthetic benchmark data.synth" in err and err.count("\n") == 1
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"] and not (tmp_path / "exp-out").exists()
    doc["data"]["synth"] = synth  # as drawn: it runs
    spec.write_text(yaml.safe_dump(doc))
    code, _, err = run_cli("experiment", "run", spec, "--no-progress")
    assert code == 0, err


def test_an_audit_setting_change_reaudits_without_retraining(data, tmp_path, run_cli):
    spec = _write(tmp_path / "tiny.yaml", data, seeds=[0], folds={"kind": "fixed"}, arms=[{"name": "FACR"}],
                  comparisons=[], per_class=[], audit={"split": "test", "oracle": False})
    assert run_cli("experiment", "run", spec, "--no-progress")[0] == 0
    cell = tmp_path / "exp-out" / "cells" / "facr" / "seed0" / "fixed"
    weights = (cell / "model" / "model.safetensors").stat().st_mtime_ns
    _write(tmp_path / "tiny.yaml", data, seeds=[0], folds={"kind": "fixed"}, arms=[{"name": "FACR"}],
           comparisons=[], per_class=[], audit={"split": "test", "oracle": False, "limit": 3})
    code, _, err = run_cli("experiment", "run", spec, "--no-progress")
    assert code == 0 and "(0 done, 1 to run)" in err
    assert json.loads((cell / "audit.json").read_text())["n_samples"] == 3
    assert (cell / "model" / "model.safetensors").stat().st_mtime_ns == weights


def test_experiment_dry_run_lists_cells_and_data_flag_overrides_the_file(data, tmp_path, run_cli):
    spec = _write(tmp_path / "tiny.yaml", data)
    code, out, _ = run_cli("experiment", "run", spec, "--dry-run")
    assert code == 0 and out.count("todo ") == 12 and "12 cells, 0 done" in out
    assert not (tmp_path / "exp-out").exists()
    # LOSO folds come from the data: a missing folder is a clear error, --data points elsewhere
    spec = _write(tmp_path / "tiny.yaml", tmp_path / "missing")
    code, _, err = run_cli("experiment", "run", spec, "--dry-run")
    assert code == 2 and "missing" in err and "does not exist yet" in err
    code, out, _ = run_cli("experiment", "run", spec, "--dry-run", "--data", data)
    assert code == 0 and "12 cells, 0 done" in out


def test_a_dry_run_lists_the_loso_folds_of_a_benchmark_not_rendered_yet_and_renders_nothing(data, tmp_path, run_cli):
    # data.synth names the benchmark the run would render: its subjects are the folds, as once it is written
    synth = {"n": 96, "seed": 0, "subjects": 8, "size": 32}
    spec = _write(tmp_path / "tiny.yaml", tmp_path / "later", seeds=[0])
    doc = yaml.safe_load(spec.read_text())
    doc["data"]["synth"] = synth
    doc["folds"] = {"kind": "loso"}
    spec.write_text(yaml.safe_dump(doc))
    code, planned, err = run_cli("experiment", "run", spec, "--dry-run")
    assert code == 0, err
    assert planned.count("todo ") == 16 and not (tmp_path / "later").exists() and not (tmp_path / "exp-out").exists()
    code, written, _ = run_cli("experiment", "run", spec, "--dry-run", "--data", data)  # the same config, rendered
    assert code == 0 and written.replace(str(data), "D") == planned.replace(str(tmp_path / "later"), "D")


@pytest.mark.parametrize("over, needle", [
    ({"arms": []}, "arms must list at least one arm"),
    ({"comparisons": [["FACR", "nope"]]}, "comparisons: each entry is [arm, arm]"),
    ({"seedz": [0]}, "unknown config field(s): seedz"),
    ({"folds": {"kind": "kfold"}}, "kind must be 'fixed' or 'loso'"),
])
def test_bad_experiment_file_is_one_line_naming_it(data, tmp_path, run_cli, over, needle):
    spec = _write(tmp_path / "bad.yaml", data, **over)
    code, _, err = run_cli("experiment", "run", spec)
    assert code == 2 and err.startswith(f"facr: {spec}") and needle in err and err.count("\n") == 1


def test_shipped_experiment_files_load_and_name_their_paper_rows(repo):
    from facr.audit.experiment import load_experiment

    files = sorted((repo / "audits").glob("*.yaml"))
    names = {f.stem for f in files}
    assert {"synth_table1", "synth_table2", "synth_table4",
            "unbc_table1", "affwild2_table2", "affwild2_table4"} <= names
    for f in files:
        spec = load_experiment(f)
        arm_names = {a.name for a in spec.arms}
        assert set(spec.paper) <= arm_names, f
        assert (repo / spec.train_config).exists(), f


def test_across_seed_section_gives_each_seeds_spread_and_whether_a_difference_keeps_its_sign():
    from facr.audit.experiment import render_results

    def arm(per_seed):
        return {"accuracy": {"mean": 0.5, "std_subjects": None, "n_subjects": 4, "seed_sd_mean": None,
                             "pooled_mean": None, "pooled_std_seeds": None, "per_seed": per_seed}}

    results = {"experiment": "demo", "folds": "fixed", "seeds": [0, 1, 2], "n_cells_done": 6, "n_cells": 6,
               "metrics": ["accuracy"], "comparisons": [{"a": "FACR", "b": "off", "metrics": {}}],
               "arms": {"FACR": arm({"0": 0.40, "1": 0.30, "2": 0.35}), "off": arm({"0": 0.30, "1": 0.40, "2": 0.25})},
               "oracle_per_seed": {"FACR": {"shortcut_reliance": {"0": 0.5, "1": 0.6, "2": 0.7}},
                                   "off": {"shortcut_reliance": {"0": 0.6, "1": 0.7, "2": 0.8}}}}
    md = render_results(results)
    assert "## Across training seeds (3)" in md
    # FACR accuracy 0.40, 0.30, 0.35: mean 0.35, s.d. 0.05 (by hand), range [0.30, 0.40]
    assert "| accuracy | 0.350 ± 0.050 [0.300, 0.400] | 0.317 ± 0.076 [0.250, 0.400] |" in md
    # accuracy: +0.10, -0.10, +0.10 -> the sign does not hold; shortcut reliance: -0.1 in every seed
    assert "| FACR vs off | accuracy | +0.100 | -0.100 | +0.100 | **mixed** (higher in 2/3) |" in md
    assert "| FACR vs off | shortcut reliance | -0.100 | -0.100 | -0.100 | lower in 3/3 |" in md
    # one seed: no across-seed section
    results["seeds"] = [0]
    assert "Across training seeds" not in render_results(results)


def test_a_cache_is_another_experiments_cells_or_a_folder_facr_marked(data, tmp_path, run_cli):
    from facr.outputs import read_marker

    over = dict(seeds=[0], folds={"kind": "loso", "max_folds": 1}, comparisons=[], per_class=[],
                arms=[{"name": "FACR"}])
    first = _write(tmp_path / "first.yaml", data, **over)
    assert run_cli("experiment", "run", first, "--no-progress")[0] == 0
    # another experiment reuses the first one's cells: nothing is trained again
    second = _write(tmp_path / "second.yaml", data, **over, out=str(tmp_path / "second-out"),
                    cache=str(tmp_path / "exp-out" / "cells"))
    code, _, err = run_cli("experiment", "run", second, "--no-progress")
    assert code == 0 and "(1 done, 0 to run)" in err, err
    # a new cache folder is made and marked; a second run continues it
    fresh = _write(tmp_path / "fresh.yaml", data, **over, out=str(tmp_path / "fresh-out"),
                   cache=str(tmp_path / "shared-cells"))
    assert run_cli("experiment", "run", fresh, "--no-progress")[0] == 0
    assert read_marker(tmp_path / "shared-cells")["kind"] == "experiment-cells"
    code, _, err = run_cli("experiment", "run", fresh, "--no-progress")
    assert code == 0 and "(1 done, 0 to run)" in err, err
    # a folder of the user's is refused before anything is written into it
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    theirs = _write(tmp_path / "theirs.yaml", data, **over, out=str(tmp_path / "theirs-out"), cache=str(mine))
    code, _, err = run_cli("experiment", "run", theirs, "--no-progress")
    assert code == 2 and err.count("\n") == 1 and "mine" in err and "facr did not write it" in err, err
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"] and not (tmp_path / "theirs-out").exists()
    # and so is the data itself
    inside = _write(tmp_path / "inside.yaml", data, **over, out=str(tmp_path / "inside-out"), cache=str(data / "c"))
    code, _, err = run_cli("experiment", "run", inside, "--no-progress")
    assert code == 2 and "never writes over what it reads" in err, err
