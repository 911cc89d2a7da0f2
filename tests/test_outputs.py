"""Output folders (issue 23, data loss): facr never deletes or overwrites a folder it did not write.

Each case of the issue is its own regression test, through the CLI where there is one: audit and
synth --out onto a user's folder, the data or the model; same-kind replacement only with
--overwrite; a folder created during the run; two writers; temp folders on failure, SIGTERM and
SIGKILL; resume of a copied or moved run; a run folder holds one run; corrupt state/ files.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from facr.data.synth import SynthConfig, write_synth
from facr.errors import FacrError
from facr.outputs import MARKER, OutputError, output_dir, output_file, read_marker, run_dir, write_marker
from facr.train import load_train_config, train

SYNTH = ("--n", 12, "--subjects", 3, "--size", 32, "--workers", 1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """(dataset, run folder): a tiny synth set and a reasoner trained 2 steps on it (state/ kept)."""
    root = tmp_path_factory.mktemp("outputs")
    data = root / "synth"
    write_synth(data, SynthConfig(n=120, seed=0, subjects=6, size=32), workers=1)
    train(load_train_config(None, {"data.path": str(data), "data.image_size": 32, "encoder.arch": "resnet-tiny",
                                   "graph": "truth", "batch_size": 16, "max_steps": 2, "lr": 0.01,
                                   "data.val_split": None, "out": str(root / "run")}), progress=False)
    return data, root / "run"


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def users_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "thesis.txt").write_text("four years of work")
    return path


def one_line(code: int, err: str) -> str:
    assert code == 2 and err.startswith("facr: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def leftovers(parent: Path) -> list[str]:
    """Temp folders and lock files facr left in ``parent``."""
    return sorted(p.name for p in parent.iterdir() if ".facr-" in p.name)


# ------------------------------------------------------------------------------------ audit --out
def test_audit_out_onto_a_users_folder_exits_2_and_keeps_the_files_even_with_overwrite(trained, run_cli, tmp_path):
    data, run = trained
    mine = users_folder(tmp_path / "mine")
    for extra in ((), ("--overwrite",)):
        code, _, err = run_cli("audit", "--model", run, "--data", data, "--limit", 4, "--no-oracle", "--out", mine,
                               "--no-progress", *extra)
        assert "facr did not write it" in one_line(code, err)
    assert sorted(p.name for p in mine.iterdir()) == ["thesis.txt"]
    assert (mine / "thesis.txt").read_text() == "four years of work" and leftovers(tmp_path) == []


@pytest.mark.parametrize("where, words", [("data", "is the input"), ("run", "is the input"),
                                          ("run/audit", "lies inside the input"), ("parent", "holds the input")])
def test_audit_out_onto_the_data_or_the_model_it_reads_is_refused(trained, run_cli, where, words):
    data, run = trained
    out = {"data": data, "run": run, "run/audit": run / "audit", "parent": data.parent}[where]
    before = snapshot(data.parent)
    code, _, err = run_cli("audit", "--model", run, "--data", data, "--limit", 4, "--no-oracle", "--out", out,
                           "--overwrite", "--no-progress")
    assert words in one_line(code, err) and "never writes over what it reads" in err
    assert snapshot(data.parent) == before  # the data and the run, byte for byte


def test_audit_out_replaces_an_earlier_audit_only_with_overwrite(trained, run_cli, tmp_path):
    data, run = trained
    out = tmp_path / "report"
    common = ("audit", "--model", run, "--data", data, "--no-oracle", "--no-progress", "--out", out)
    assert run_cli(*common, "--limit", 6)[0] == 0
    marker = read_marker(out)
    assert marker["kind"] == "audit" and marker["facr_version"] and marker["created"]
    first = snapshot(out)
    code, _, err = run_cli(*common, "--limit", 4)
    assert "pass --overwrite to replace it" in one_line(code, err)
    assert snapshot(out) == first
    assert run_cli(*common, "--limit", 4, "--overwrite")[0] == 0
    assert json.loads((out / "metrics.json").read_text())["n_samples"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no temp folder, no lock left


def test_audit_out_onto_another_kind_of_facr_output_is_refused_even_with_overwrite(trained, run_cli, tmp_path):
    data, run = trained
    other = users_folder(tmp_path / "synth-copy")
    write_marker(other, "synth")
    code, _, err = run_cli("audit", "--model", run, "--data", data, "--limit", 4, "--no-oracle", "--no-progress",
                           "--out", other, "--overwrite")
    assert "holds facr output of another kind (synth, not audit)" in one_line(code, err)
    assert (other / "thesis.txt").exists()


# ------------------------------------------------------------------------------------ data synth
def test_synth_overwrite_onto_a_users_folder_is_refused(run_cli, tmp_path):
    mine = users_folder(tmp_path / "mine")
    code, _, err = run_cli("data", "synth", "--out", mine, *SYNTH, "--overwrite")
    assert "facr did not write it" in one_line(code, err)
    assert sorted(p.name for p in mine.iterdir()) == ["thesis.txt"] and leftovers(tmp_path) == []


def test_synth_replaces_an_earlier_synth_folder_only_with_overwrite(run_cli, tmp_path):
    out = tmp_path / "ds"
    assert run_cli("data", "synth", "--out", out, *SYNTH, "--seed", 1)[0] == 0
    assert read_marker(out)["kind"] == "synth"
    first = snapshot(out)
    code, _, err = run_cli("data", "synth", "--out", out, *SYNTH, "--seed", 2)
    assert "pass --overwrite" in one_line(code, err) and snapshot(out) == first
    assert run_cli("data", "synth", "--out", out, *SYNTH, "--seed", 2, "--overwrite")[0] == 0
    assert json.loads((out / "config.json").read_text())["config"]["seed"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_a_folder_created_during_the_run_is_not_deleted(run_cli, tmp_path, monkeypatch):
    import facr.graph

    out = tmp_path / "ds"
    save_graph = facr.graph.save_graph

    def user_creates_the_folder_meanwhile(graph, path):
        users_folder(out)  # after facr's first check, before its swap
        save_graph(graph, path)

    monkeypatch.setattr(facr.graph, "save_graph", user_creates_the_folder_meanwhile)
    for extra in ((), ("--overwrite",)):
        shutil.rmtree(out, ignore_errors=True)
        code, _, err = run_cli("data", "synth", "--out", out, *SYNTH, *extra)
        assert "facr did not write it" in one_line(code, err)
        assert sorted(p.name for p in out.iterdir()) == ["thesis.txt"]
    assert leftovers(tmp_path) == []


# ------------------------------------------------------------------------------------ two writers
def test_a_second_writer_to_the_same_out_gets_one_line_while_the_first_holds_it(run_cli, tmp_path):
    out = tmp_path / "ds"
    with output_dir(out, "synth") as tmp:  # the first writer, mid-run
        code, _, err = run_cli("data", "synth", "--out", out, *SYNTH, "--overwrite")
        assert "is writing it right now" in one_line(code, err)
        (tmp / "first.txt").write_text("the first writer's")
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "first.txt"]  # the first one finished, alone


def test_two_synth_processes_into_one_out_cannot_both_succeed(tmp_path):
    out = tmp_path / "ds"
    cmd = [sys.executable, "-m", "facr", "data", "synth", "--out", str(out), "--n", "60", "--subjects", "3",
           "--size", "32", "--workers", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    results = [(p.wait(timeout=240), p.stderr.read()) for p in procs]
    assert sorted(code for code, _ in results) == [0, 2], results
    err = next(e for code, e in results if code == 2)
    assert err.count("\n") == 1 and ("is writing it right now" in err or "pass --overwrite" in err), err
    assert read_marker(out)["kind"] == "synth" and leftovers(tmp_path) == []


def test_a_lock_held_by_a_live_process_refuses_and_a_dead_ones_lock_is_taken_over(run_cli, tmp_path):
    out = tmp_path / "ds"
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        (tmp_path / ".ds.facr-lock").write_text(f"{holder.pid} {socket.gethostname()}\n")
        code, _, err = run_cli("data", "synth", "--out", out, *SYNTH)
        assert f"another facr process (pid {holder.pid}) is writing it" in one_line(code, err)
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone: its lock is stale and its temp folder is removed, with a note
    (tmp_path / f".ds.facr-tmp-{holder.pid}-abc123").mkdir()
    code, _, err = run_cli("data", "synth", "--out", out, *SYNTH)
    assert code == 0 and f"left by an interrupted facr run (pid {holder.pid})" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


# ------------------------------------------------------------------------------------ temp folders
def test_the_temp_folder_is_removed_after_an_exception(tmp_path, monkeypatch):
    def disk_full(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("facr.graph.save_graph", disk_full)
    with pytest.raises(OSError, match="disk full"):
        write_synth(tmp_path / "ds", SynthConfig(n=12, subjects=3, size=32), workers=1)
    assert list(tmp_path.iterdir()) == []


def test_the_temp_folder_is_removed_after_ctrl_c_and_sigterm(run_cli, tmp_path, monkeypatch):
    def ctrl_c(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr("facr.graph.save_graph", ctrl_c)
    code, _, err = run_cli("data", "synth", "--out", tmp_path / "ds", *SYNTH)
    assert code == 130 and list(tmp_path.iterdir()) == []

    def sigterm(*a, **k):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises at once: never reached

    monkeypatch.setattr("facr.graph.save_graph", sigterm)
    with pytest.raises(SystemExit) as exc:
        run_cli("data", "synth", "--out", tmp_path / "ds", *SYNTH)
    assert exc.value.code == 128 + signal.SIGTERM and list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the default handler is back


def test_a_sigkilled_writers_temp_folder_is_removed_by_the_next_run(run_cli, tmp_path):
    out = tmp_path / "ds"
    proc = subprocess.Popen([sys.executable, "-m", "facr", "data", "synth", "--out", str(out), "--n", "3000",
                             "--size", "64", "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".ds.facr-tmp-*")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    assert leftovers(tmp_path) == [".ds.facr-lock", next(tmp_path.glob(".ds.facr-tmp-*")).name]
    code, _, err = run_cli("data", "synth", "--out", out, *SYNTH)
    assert code == 0 and f"left by an interrupted facr run (pid {proc.pid})" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


# ------------------------------------------------------------------------------- run folders, resume
def _train_args(data: Path, out: Path, *extra) -> list:
    return ["train", "reasoner", "--data", data, "--out", out, "--arch", "resnet-tiny", "--graph", "truth",
            "--batch-size", 16, "--max-steps", 2, "--no-progress", "--json", *extra]


def _longer(run: Path, max_steps: int) -> None:
    """Make the saved run ask for more steps than its state has (a run stopped part-way)."""
    cfg = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**cfg, "max_steps": max_steps}))


def test_resume_of_a_copied_run_writes_only_into_the_copy(trained, run_cli, tmp_path):
    _, run = trained
    original = snapshot(run)
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    _longer(copy, 4)
    code, out, err = run_cli("train", "reasoner", "--out", copy, "--resume", "--no-progress", "--json")
    assert code == 0, err
    assert json.loads(out)["global_step"] == 4 and json.loads((copy / "metrics.json").read_text())["global_step"] == 4
    assert json.loads((copy / "config.json").read_text())["out"] == str(copy)
    assert snapshot(run) == original  # the run it was copied from: byte for byte


def test_a_moved_run_resumes_where_it_is_now(trained, run_cli, tmp_path):
    _, run = trained
    first, moved = tmp_path / "first", tmp_path / "moved"
    shutil.copytree(run, first)
    os.rename(first, moved)
    _longer(moved, 3)
    code, out, err = run_cli("train", "reasoner", "--out", moved, "--resume", "--no-progress", "--json")
    assert code == 0, err
    assert json.loads(out)["global_step"] == 3 and not first.exists()


def test_training_into_another_runs_folder_needs_overwrite_and_replaces_it_whole(trained, run_cli, tmp_path):
    data, run = trained
    other = tmp_path / "other"
    shutil.copytree(run, other)
    (other / "best").mkdir()  # something only the old run had
    (other / "best" / "model.safetensors").write_bytes(b"the old run's")
    before = snapshot(other)
    code, _, err = run_cli(*_train_args(data, other, "--seed", 5))
    assert "already holds a facr reasoner-run output" in one_line(code, err) and snapshot(other) == before
    assert err.endswith("; pass --resume to continue it, or --overwrite to replace it\n")
    code, _, err = run_cli(*_train_args(data, other, "--seed", 5, "--overwrite"))
    assert code == 0, err
    assert not (other / "best").exists() and json.loads((other / "config.json").read_text())["seed"] == 5
    assert read_marker(other)["kind"] == "reasoner-run" and leftovers(tmp_path) == []


def test_overwrite_keeps_the_old_run_until_the_new_one_ends_well(trained, run_cli, tmp_path):
    """A refusal that only reading the data finds (AffectNet codes no AU intensity), after the run folder
    was claimed: the old run is back, file for file, and nothing else is left beside it."""
    data, run = trained
    other = tmp_path / "other"
    shutil.copytree(run, other)
    before = snapshot(other)
    affectnet = Path(__file__).parent / "data" / "fixtures" / "affectnet"
    code, _, err = run_cli("train", "reasoner", "--data", affectnet, "--graph", "emfacs", "--arch", "resnet-tiny",
                           "--out", other, "--overwrite", "--au-intensity", 1, "--no-progress")
    assert "loss.au_intensity needs AU intensities" in one_line(code, err)
    assert snapshot(other) == before and leftovers(tmp_path) == []


@pytest.mark.parametrize("stop", [RuntimeError("bad batch"), KeyboardInterrupt(), SystemExit(143)])
def test_a_run_that_stops_under_overwrite_puts_the_old_one_back(tmp_path, stop):
    """An error, Ctrl-C or SIGTERM (``SystemExit(143)`` under the lock) part-way through a replacing job."""
    old = tmp_path / "run"
    old.mkdir()
    write_marker(old, "reasoner-run")
    (old / "model.safetensors").write_bytes(b"the old run's weights")
    before = snapshot(old)
    with pytest.raises(type(stop)), run_dir(old, "reasoner-run", overwrite=True) as folder:
        assert not (folder / "model.safetensors").exists()  # the job starts in an empty folder
        (folder / "config.json").write_text("{}")
        (folder / "state").mkdir()
        (folder / "state" / "position.json").write_text("{}")
        raise stop
    assert snapshot(old) == before and leftovers(tmp_path) == []
    with run_dir(old, "reasoner-run", overwrite=True) as folder:  # one that ends well replaces it whole
        (folder / "config.json").write_text('{"new": 1}')
    assert sorted(snapshot(old)) == [MARKER, "config.json"] and leftovers(tmp_path) == []


def test_after_a_kill_9_under_overwrite_the_next_writer_puts_the_old_run_back(tmp_path, capsys):
    """What ``kill -9`` leaves part-way through a replacing job: its lock, its unfinished run in the folder
    and the old run kept aside. The next writer (here one resuming) finds the old run back in place."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run = tmp_path / "run"
    kept = tmp_path / f".run.facr-kept-{dead.pid}-x1y2"
    for folder, weights in ((kept, b"the old run's weights"), (run, b"half a new run")):
        folder.mkdir()
        write_marker(folder, "reasoner-run")
        (folder / "model.safetensors").write_bytes(weights)
    before = snapshot(kept)
    (tmp_path / ".run.facr-lock").write_text(f"{dead.pid} {socket.gethostname()}\n")
    with run_dir(run, "reasoner-run", resume=True) as folder:
        assert snapshot(folder) == before
    assert f"put back {run}, which an interrupted --overwrite run (pid {dead.pid}) was replacing" in \
        capsys.readouterr().err
    assert snapshot(run) == before and leftovers(tmp_path) == []


def test_training_into_a_users_folder_is_refused_even_with_overwrite(trained, run_cli, tmp_path):
    data, _ = trained
    mine = users_folder(tmp_path / "mine")
    for extra in ((), ("--overwrite",)):
        code, _, err = run_cli(*_train_args(data, mine, *extra))
        assert "facr did not write it" in one_line(code, err)
    assert sorted(p.name for p in mine.iterdir()) == ["thesis.txt"]
    code, _, err = run_cli(*_train_args(data, data / "run"))
    assert "lies inside the input" in one_line(code, err) and not (data / "run").exists()


def test_resume_and_overwrite_together_are_refused(trained, run_cli, tmp_path):
    _, run = trained
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    code, _, err = run_cli("train", "reasoner", "--out", copy, "--resume", "--overwrite")
    assert "pass one" in one_line(code, err)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


def _wrong_keys(path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    save_file({"not.a.weight": torch.zeros(3)}, str(path))


def _json_edit(**change):
    def edit(path: Path) -> None:
        doc = json.loads(path.read_text())
        doc.update(change)
        for key in [k for k, v in change.items() if v is None]:
            doc.pop(key)
        path.write_text(json.dumps(doc))
    return edit


@pytest.mark.parametrize("file, damage", [
    ("model.safetensors", _truncate),
    ("optimizer.safetensors", _truncate),
    ("model.safetensors", _wrong_keys),
    ("optimizer.safetensors", _wrong_keys),
    ("position.json", lambda p: p.write_text('{"epoch": 0, "glob')),
    ("position.json", _json_edit(global_step="many")),
    ("position.json", _json_edit(param_groups=None)),
    ("position.json", lambda p: p.write_text("[1, 2]")),
], ids=["truncated-weights", "truncated-optimizer", "weights-wrong-keys", "optimizer-wrong-keys", "position-cut",
        "position-wrong-type", "position-missing-key", "position-not-object"])
def test_corrupt_state_files_on_resume_are_one_line_naming_the_file(trained, run_cli, tmp_path, file, damage):
    _, run = trained
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    damage(copy / "state" / file)
    code, _, err = run_cli("train", "reasoner", "--out", copy, "--resume", "--no-progress")
    assert str(copy / "state" / file) in one_line(code, err) and "cannot resume from it" in err


# ----------------------------------------------------------------- checkpoints, backbones, experiments
def test_save_reasoner_replaces_only_its_own_kind_and_only_with_overwrite(tmp_path):
    from facr.graph import resolve_graph
    from facr.models.encoder import EncoderConfig
    from facr.models.reasoner import Reasoner, ReasonerConfig, load_reasoner, save_reasoner

    graph = resolve_graph("emfacs")
    config = ReasonerConfig(aus=graph.aus, classes=["neutral", *graph.classes[:-1]],
                            encoder=EncoderConfig(arch="resnet-tiny", image_size=32))
    model = Reasoner(config)
    path = save_reasoner(model, graph, tmp_path / "ckpt")
    with pytest.raises(OutputError, match="pass --overwrite"):
        save_reasoner(model, graph, path)
    save_reasoner(Reasoner(ReasonerConfig(**{**config.__dict__, "head": "linear"})), graph, path, overwrite=True)
    assert load_reasoner(path)[0].config.head == "linear" and read_marker(path)["kind"] == "reasoner"
    mine = users_folder(tmp_path / "mine")
    with pytest.raises(OutputError, match="facr did not write it"):
        save_reasoner(model, graph, mine, overwrite=True)
    assert sorted(p.name for p in mine.iterdir()) == ["thesis.txt"]


def test_import_gguf_out_holding_the_gguf_file_is_refused(run_cli, tmp_path):
    out = tmp_path / "models"
    out.mkdir()
    (out / "mine.gguf").write_bytes(b"GGUF" + bytes(64))
    code, _, err = run_cli("models", "import-gguf", out / "mine.gguf", "--out", out, "--overwrite")
    assert "holds the input" in one_line(code, err) and (out / "mine.gguf").exists()


def test_experiment_and_verbalizer_runs_refuse_a_users_folder(trained, run_cli, tmp_path):
    data, run = trained
    mine = users_folder(tmp_path / "mine")
    spec = tmp_path / "exp.yaml"
    spec.write_text(json.dumps({"name": "t", "train_config": None, "data": {"path": str(data)},
                                "arms": [{"name": "a"}], "metrics": ["accuracy"]}))
    code, _, err = run_cli("experiment", "run", spec, "--out", mine, "--no-progress")
    assert "facr did not write it" in one_line(code, err)
    code, _, err = run_cli("train", "verbalizer", "--reasoner", run, "--data", data, "--backbone", "tiny-qwen3",
                           "--max-steps", 1, "--limit", 4, "--out", mine, "--overwrite", "--no-progress")
    assert "facr did not write it" in one_line(code, err)
    assert sorted(p.name for p in mine.iterdir()) == ["thesis.txt"]


def test_a_one_file_out_never_replaces_an_input_or_a_file_inside_one_and_a_file_only_with_overwrite(tmp_path):
    model = tmp_path / "run"
    (model / "model").mkdir(parents=True)
    weights = model / "model" / "model.safetensors"
    weights.write_bytes(b"weights")
    table = tmp_path / "t.csv"
    table.write_text("a,b\n")
    mine = tmp_path / "mine.png"
    mine.write_bytes(b"mine")
    assert output_file(model / "overlay.png", inputs=[model]) == model / "overlay.png"  # new, beside the model
    assert output_file(mine, overwrite=True, inputs=[model, table]) == mine
    for target, overwrite, words in [
            (weights, True, f"lies inside the input {model}: facr never writes over what it reads"),
            (table, True, f"is the input {table} itself: facr never writes over what it reads"),
            (mine, False, "already exists; pass --overwrite to replace it"),
            (model, True, "is a directory, expected a file path")]:
        with pytest.raises(FacrError) as info:
            output_file(target, overwrite=overwrite, inputs=[model, table])
        assert words in str(info.value)
    assert weights.read_bytes() == b"weights" and table.read_text() == "a,b\n" and mine.read_bytes() == b"mine"
    assert issubclass(OutputError, FacrError)


def test_a_file_that_appears_at_a_one_file_out_while_facr_works_is_left_as_it_is(tmp_path):
    from facr.utils import atomic_write_text

    out = tmp_path / "g.json"
    output_file(out)  # absent when the command began
    out.write_text("written by someone else meanwhile")
    with pytest.raises(FacrError, match="appeared while facr was working: left as it is"):
        atomic_write_text(out, "facr's result")
    assert out.read_text() == "written by someone else meanwhile"
    assert [p.name for p in tmp_path.iterdir()] == ["g.json"]  # no temp file left
    output_file(out, overwrite=True)  # the next command says --overwrite: replaced
    atomic_write_text(out, "facr's result")
    assert out.read_text() == "facr's result"


def test_files_and_folders_facr_writes_get_the_permissions_of_new_ones_not_mkstemps_0600(tmp_path):
    from facr.utils import atomic_write_text, current_umask

    new = 0o666 & ~current_umask()
    atomic_write_text(tmp_path / "a.txt", "x")
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == new
    kept = tmp_path / "b.txt"
    kept.write_text("old")
    kept.chmod(0o640)
    atomic_write_text(kept, "new")
    assert kept.stat().st_mode & 0o777 == 0o640  # a replaced file keeps its mode
    with output_dir(tmp_path / "report", "audit") as folder:
        (folder / "r.md").write_text("r")
    assert (tmp_path / "report").stat().st_mode & 0o777 == 0o777 & ~current_umask()
