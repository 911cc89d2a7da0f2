"""`make demo` (scripts/demo.sh) prints one seed's comparison: it must say so and show the committed
3-seed results beside it, and the file it points at must exist and hold the across-seed section."""

from __future__ import annotations

import json
import re
import subprocess


def _script(repo) -> str:
    return (repo / "scripts" / "demo.sh").read_text(encoding="utf-8")


def test_demo_points_at_committed_three_seed_results_of_its_own_comparison(repo):
    path = re.search(r"^SEEDS=(\S+)$", _script(repo), re.M).group(1)
    results = json.loads((repo / path).with_name("results.json").read_text(encoding="utf-8"))
    demo = (repo / "audits" / "synth_demo.yaml").read_text(encoding="utf-8")
    # the same arms and recipe as the one-seed demo, three training seeds, every cell finished
    assert results["seeds"] == [0, 1, 2] and results["n_cells_done"] == results["n_cells"] == 9
    assert list(results["arms"]) == ["FACR", "faith-off", "permuted"]
    for arm in results["arms"]:
        assert f"- name: {arm}\n" in demo
    assert "ONE training seed" in demo and path in demo


def test_demo_prints_the_committed_across_seed_section_and_stops_before_the_next(repo):
    script = _script(repo)
    path = re.search(r"^SEEDS=(\S+)$", script, re.M).group(1)
    awk = re.search(r"^\s*(awk .*) \"\$SEEDS\"$", script, re.M).group(1)
    out = subprocess.run(["bash", "-c", f'{awk} "$0"', str(repo / path)], capture_output=True, text=True,
                         check=True).stdout
    lines = out.splitlines()
    assert lines[0] == "## Across training seeds (3)"
    assert "| FACR vs faith-off | cf invariance | +0.223 | +0.235 | +0.192 | higher in 3/3 |" in lines
    assert not any(line.startswith("## ") for line in lines[1:])  # only that section, not the paired tests
    # every printed comparison of the one-seed run is followed by the note that says so
    assert script.count("one_seed\n") == 2 and "One training seed (0), on this machine" in script


def test_demo_never_writes_into_a_folder_of_yours_and_can_run_again_into_its_own(repo, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "experiment.md").write_text("my notes")
    env = {"PATH": "/usr/bin:/bin", "FACR": "true", "CHAT": "0"}  # every facr step a no-op: the script's own writes
    run = subprocess.run(["bash", "scripts/demo.sh", str(mine)], cwd=repo, capture_output=True, text=True, env=env)
    assert run.returncode == 2 and (mine / "experiment.md").read_text() == "my notes"
    assert run.stderr == f"make demo: {mine}: is not empty and make demo did not write it (no .facr-demo): " \
                         "choose another DEMO=\n"
    ours = tmp_path / "ours"
    for _ in range(2):  # a fresh folder, then the demo's own folder again
        run = subprocess.run(["bash", "scripts/demo.sh", str(ours)], cwd=repo, capture_output=True, text=True, env=env)
        assert run.returncode == 0, run.stderr
    assert (ours / ".facr-demo").exists()
    # the steps that write one file replace the demo's earlier one, which facr does only with --overwrite
    one_file = [line for line in _script(repo).splitlines() if re.search(r'--out "\$OUT/[^"/]+\.\w+"', line)]
    assert len(one_file) == 4 and all("--overwrite" in line for line in one_file)
