"""Stage-1 training on accelerate: end to end, controls, resume, CLI, two processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from facr.data.formats import load
from facr.data.synth import SynthConfig, write_synth
from facr.graph import load_graph
from facr.train import load_train_config, train
from facr.utils import free_port

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("train") / "synth"
    write_synth(out, SynthConfig(n=120, seed=0, subjects=6, size=32), workers=1)
    return out


def _cfg(data: Path, out: Path, **over):
    base = {"data.path": str(data), "data.image_size": 32, "encoder.arch": "resnet-tiny", "graph": "truth",
            "batch_size": 16, "epochs": 2, "out": str(out), "lr": 0.01}
    base.update(over)
    return load_train_config(None, base)


def test_training_end_to_end_writes_a_loadable_model_and_metrics(tiny_data, tmp_path):
    from facr.models.reasoner import load_reasoner

    result = train(_cfg(tiny_data, tmp_path / "run"), progress=False)
    run = tmp_path / "run"
    assert {p.name for p in (run / "model").iterdir()} == {"model.safetensors", "config.json", "graph.json",
                                                          ".facr-output.json"}
    model, graph = load_reasoner(run / "model")
    assert graph == load_graph(tiny_data / "graph.json")  # graph: truth = the dataset's own graph
    assert model.config.classes == ["neutral", "happiness", "sadness", "surprise", "fear", "anger", "disgust"]
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("accuracy", "macro_f1", "auc", "cf_sensitivity", "cf_invariance", "graph_causal_agreement",
                "true_graph_agreement", "au_f1"):
        assert key in metrics, key
    assert metrics == result.metrics and metrics["split"] == "test" and metrics["num_processes"] == 1
    # accuracy and n_samples recomputed apart from facr's evaluation: the test records read from the
    # dataset, one forward pass, argmax against the label's index in the model's class order
    test = [r for r in load("synth", tiny_data).records if r.split == "test"]
    with torch.no_grad():
        logits = model.eval()(torch.from_numpy(np.stack([r.image for r in test]))).logits
    labels = torch.tensor([model.config.classes.index(r.emotion) for r in test])
    assert metrics["n_samples"] == len(test) == 20  # 120 images over 6 subjects: the test subject's 20
    assert metrics["accuracy"] == pytest.approx((logits.argmax(1) == labels).float().mean().item(), abs=1e-6)
    assert metrics["unscored_emotions"] == {"test": {}, "val": {}}  # every emotion of the benchmark is trained on
    history = json.loads((run / "history.json").read_text())
    assert [h["epoch"] for h in history] == [0, 1] and "macro_f1" in history[0]  # per-epoch validation
    assert json.loads((run / "config.json").read_text())["graph"] == "truth"
    assert not list(run.glob(".state*"))  # no temp folders left


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "model" / "model.safetensors"))


def test_resume_mid_epoch_gives_the_same_weights_as_a_straight_run(tiny_data, tmp_path):
    # 6 batches per epoch (96 train images / 16); 9 steps straight vs 4 + resume to 9 (mid-epoch both times)
    straight = tmp_path / "straight"
    train(_cfg(tiny_data, straight, max_steps=9, epochs=3), progress=False)
    split = tmp_path / "split"
    train(_cfg(tiny_data, split, max_steps=4, epochs=3), progress=False)
    position = json.loads((split / "state" / "position.json").read_text())
    assert position["global_step"] == 4 and position["batch_in_epoch"] == 4
    half = _weights(split)
    train(_cfg(tiny_data, split, max_steps=9, epochs=3), resume=True, progress=False)
    a, b = _weights(straight), _weights(split)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], half[k]) for k in a)  # it did train after resuming
    assert json.loads((split / "metrics.json").read_text())["global_step"] == 9


def test_faith_off_and_graph_controls(tiny_data, tmp_path):
    from facr.models.reasoner import load_reasoner

    cfg = _cfg(tiny_data, tmp_path / "off", faith="off", max_steps=2)
    assert cfg.weights.lambda_s == 0 and cfg.weights.lambda_i == 0 and cfg.weights.lambda_a == 1
    assert cfg.loss.lambda_s == 0.5  # the config keeps the values; "off" zeroes the terms in force
    res = train(cfg, progress=False)
    assert res.metrics["faith"] == "off"
    truth = load_graph(tiny_data / "graph.json")
    train(_cfg(tiny_data, tmp_path / "perm", graph="permuted", graph_base="truth", graph_seed=3, max_steps=2),
          progress=False)
    _, permuted = load_reasoner(tmp_path / "perm" / "model")
    assert permuted.provenance_counts().get("permuted", 0) > 0
    assert any(permuted.parents(c) != truth.parents(c) for c in truth.classes if c != "pain")
    train(_cfg(tiny_data, tmp_path / "emfacs", graph=str(REPO / "graphs" / "emfacs.json"), max_steps=2),
          progress=False)
    _, emfacs = load_reasoner(tmp_path / "emfacs" / "model")
    assert emfacs.name == "emfacs"


def test_cli_train_reasoner_json_and_errors(tiny_data, tmp_path, run_cli):
    out = tmp_path / "cli"
    code, stdout, _ = run_cli("train", "reasoner", "--data", tiny_data, "--out", out, "--arch", "resnet-tiny",
                              "--max-steps", 2, "--batch-size", 16, "--graph", "truth", "--seed", 1,
                              "--no-progress", "--json")
    assert code == 0
    metrics = json.loads(stdout)  # exactly one JSON object on stdout
    assert metrics["global_step"] == 2
    assert json.loads((out / "config.json").read_text())["seed"] == 1
    code, stdout, _ = run_cli("train", "table", out, out)
    assert code == 0
    lines = stdout.splitlines()
    assert lines[0] == "held-out split: test" and lines[1].startswith("| run | graph | faith | accuracy")
    assert len(lines) == 5 and lines[3].startswith("| cli | synth-truth-a | on | ")
    assert lines[3].split(" | ")[3] == f"{metrics['accuracy']:.3f}"
    code, stdout, _ = run_cli("train", "table", out, "--json")
    assert code == 0 and json.loads(stdout)["runs"][0]["accuracy"] == metrics["accuracy"]
    code, _, err = run_cli("train", "table", tmp_path / "nope")
    assert code == 2 and "metrics.json" in err
    code, _, err = run_cli("train", "reasoner", "--data", tmp_path / "nope", "--out", tmp_path / "y")
    assert code == 2 and "no such dataset" in err
    code, _, err = run_cli("train", "reasoner", "--data", tiny_data, "--out", tmp_path / "x", "--faith", "maybe")
    assert code == 2 and "faith" in err
    code, _, err = run_cli("train", "reasoner", "--out", tmp_path / "never", "--resume", "--data", tiny_data)
    assert code == 2 and "nothing to resume" in err


def test_dataset_serves_intensity_levels_from_the_weakest_present_one_and_nan_where_none_is_coded():
    from facr.data.records import FaceRecord
    from facr.data.torch_data import FaceTorchDataset, Task

    image = np.zeros((8, 8, 3), np.uint8)
    records = [FaceRecord(image, "a", "s", emotion="happiness", au_presence={"AU6": 1, "AU12": 0, "AU4": 1},
                          au_intensity={"AU6": 3.0, "AU12": 0.0}),  # AU4 coded present, its intensity not
               # AU6 coded absent without an intensity: no intensity is read into it; AU12, AU4 not coded
               FaceRecord(image, "b", "s", emotion="neutral", au_presence={"AU6": 0}),
               FaceRecord(image, "c", "s", emotion="happiness", au_presence={"AU6": 1, "AU12": 1},
                          au_intensity={"AU6": 1.0, "AU12": 1.0}),
               FaceRecord(image, "d", "s", emotion="happiness", au_presence={"AU12": 1}, au_intensity={"AU12": 1.0})]
    ds = FaceTorchDataset(records, ["AU4", "AU6", "AU12"], Task("emotion", ["neutral", "happiness"]), 8)
    nan = float("nan")
    # AU12 is coded present at one intensity only: binary, nothing to order, so no level is served for it
    assert ds.graded.tolist() == [False, True, False]
    torch.testing.assert_close(ds.__getitems__([0, 1, 2, 3])["au_intensity"],
                               torch.tensor([[nan, 3.0, nan], [nan, nan, nan], [nan, 1.0, nan], [nan, nan, nan]]),
                               equal_nan=True)
    # DISFA counts an AU present from intensity 2 (B): its levels start there, so that level 1 is the
    # weakest present one and a trace (A) coded absent is level 0, as the presence BCE has it
    disfa = [FaceRecord(image, str(i), "s", emotion="neutral", au_presence={"AU12": int(v >= 2)},
                        au_intensity={"AU12": v}) for i, v in enumerate([0.0, 1.0, 2.0, 4.0, 5.0])]
    ds = FaceTorchDataset(disfa, ["AU12"], Task("emotion", ["neutral"]), 8)
    assert ds.intensity_floor.tolist() == [2.0]
    assert ds.au_intensity[:, 0].tolist() == [0.0, 0.0, 1.0, 3.0, 4.0]


def _spied_training(monkeypatch, run_cli, data: Path, out: Path, *flags) -> list:
    """Train 2 steps from the CLI with ``flags``; what reached the loss at each: [(kwargs, LossOutput)]."""
    import facr.train as training

    facr_loss, seen = training.facr_loss, []

    def spy(*args, **kwargs):
        result = facr_loss(*args, **kwargs)
        seen.append((kwargs, result))
        return result

    monkeypatch.setattr(training, "facr_loss", spy)
    code, _, err = run_cli("train", "reasoner", "--data", data, "--out", out, "--arch", "resnet-tiny", "--max-steps",
                           2, "--batch-size", 16, "--graph", "truth", *flags, "--no-progress", "--json")
    assert code == 0, err
    return seen


def test_presence_plateau_reaches_the_loss_with_the_runs_own_head(tiny_data, tmp_path, run_cli, monkeypatch):
    out = tmp_path / "plat"
    seen = _spied_training(monkeypatch, run_cli, tiny_data, out, "--head", "graph", "--presence-plateau", 3)
    loss = json.loads((out / "config.json").read_text())["loss"]
    assert loss["presence_plateau"] == 3.0 and loss["plateau_width"] == 0.08
    assert len(seen) == 2
    for kwargs, result in seen:
        head, term = kwargs["head"], result.plateau
        assert type(head).__name__ == "GraphHead" and term is not None and torch.isfinite(term)
        assert head(torch.full((1, 19), 0.9)).shape == (1, 7)  # the run's z -> class logits head itself


def test_au_intensity_reaches_the_loss_from_the_flag_and_data_without_intensities_are_refused(
        tiny_data, tmp_path, run_cli, monkeypatch):
    out = tmp_path / "int"
    seen = _spied_training(monkeypatch, run_cli, tiny_data, out, "--au-intensity", 0.5)
    assert json.loads((out / "config.json").read_text())["loss"]["au_intensity"] == 0.5
    assert len(seen) == 2
    seen = [(kwargs["au_intensity"], result.intensity) for kwargs, result in seen]
    for level, term in seen:
        coded = level[~torch.isnan(level)]
        # the benchmark codes every AU's intensity; AU43 (eyes closed, the last AU) only ever at 1: binary
        assert level.shape == (16, 19) and torch.isnan(level).all(0).tolist() == [False] * 18 + [True]
        assert coded.numel() == 16 * 18
        assert set(coded.unique().tolist()) <= {0.0, 1.0, 2.0, 3.0, 4.0, 5.0} and coded.max() > 1
        assert term is not None and term.item() > 0
    # AffectNet codes no AU at all: nothing for the terms to read, refused before a run folder is made
    code, _, err = run_cli("train", "reasoner", "--data", AFFECTNET, "--graph", "emfacs", "--arch", "resnet-tiny",
                           "--out", tmp_path / "none", "--au-intensity", 1)
    assert code == 2
    assert err.strip().splitlines() == [f"facr: {AFFECTNET}: loss.au_intensity needs AU intensities (0-5), and "
                                        "no training record codes one"]
    assert not (tmp_path / "none").exists()


@pytest.mark.slow
def test_two_process_accelerate_launch_on_cpu(tiny_data, tmp_path):
    """`accelerate launch` with the repo's 2-process CPU config really runs two ranks (gloo)."""
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(REPO / "recipes" / "accelerate" / "cpu_2proc.yaml"), "--main_process_port", str(free_port()),
           str(REPO / "recipes" / "train_reasoner.py"), "--data", str(tiny_data), "--out", str(out),
           "--arch", "resnet-tiny", "--max-steps", "3", "--batch-size", "8", "--graph", "truth", "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_processes"] == 2 and metrics["global_step"] == 3
    assert (out / "model" / "model.safetensors").exists()


def test_loso_fold_and_early_stopping(tiny_data, tmp_path):
    subject = load("synth", tiny_data, decode=False).records[0].subject
    res = train(_cfg(tiny_data, tmp_path / "loso", **{"data.loso_subject": subject, "max_steps": 2}), progress=False)
    assert res.metrics["split"] == "test"
    assert res.metrics["n_samples"] == 20  # 120 images over 6 subjects: the held-out subject's 20
    res = train(_cfg(tiny_data, tmp_path / "early", epochs=6, early_stopping=1, lr=1e-12), progress=False)
    # lr ~0: validation never improves after the first epoch, so patience 1 stops after epoch 1
    assert [h["epoch"] for h in res.history] == [0, 1]
    assert (tmp_path / "early" / "best" / "model.safetensors").exists()


AFFECTNET = REPO / "tests" / "data" / "fixtures" / "affectnet"


def test_validation_with_no_training_emotion_is_counted_and_reads_n_a(tmp_path, run_cli):
    """The committed AffectNet fixture's two validation faces are anger (expression 6) and surprise (3),
    emotions no training face shows: the head has no class for them. The run used to crash formatting
    the epoch line; now it says they were not scored, and what it cannot measure reads n/a / null."""
    config = tmp_path / "small.yaml"
    config.write_text("data: {image_size: 32}\nearly_stopping: 1\n")
    out = tmp_path / "run"
    code, stdout, err = run_cli("train", "reasoner", "--config", config, "--data", AFFECTNET, "--graph", "emfacs",
                                "--arch", "resnet-tiny", "--epochs", 2, "--out", out, "--no-progress", "--json")
    assert code == 0, err
    assert (f"facr: warning: {AFFECTNET}: 2 of 2 val records have an emotion training lacks (anger 1, surprise 1): "
            "not scored (unscored_emotions in metrics.json)") in err
    assert "epoch 1: val n 0  acc n/a  macro-F1 n/a  sens n/a  inv n/a  agree n/a  AU-F1 n/a" in err
    metrics = json.loads(stdout)
    assert metrics["unscored_emotions"] == {"val": {"anger": 1, "surprise": 1}, "test": {}}
    assert (metrics["split"], metrics["n_samples"], metrics["accuracy"], metrics["macro_f1"]) == ("val", 0, None, None)
    history = json.loads((out / "history.json").read_text())
    # early stopping (patience 1) had no figure to watch: both epochs ran and no best/ was kept
    assert [(h["epoch"], h["n_samples"], h["macro_f1"]) for h in history] == [(0, 0, None), (1, 0, None)]
    assert not (out / "best").exists()


def test_unscored_emotions_counts_held_out_emotions_training_lacks_and_epoch_line_reads_n_a():
    from facr.data.records import FaceRecord
    from facr.data.torch_data import Task
    from facr.train import epoch_line, unscored_emotions

    task = Task("emotion", ["neutral", "happiness"])
    held_out = [FaceRecord(np.zeros((4, 4, 3), np.uint8), "x", "s", emotion=e)
                for e in ("happiness", "fear", None, "anger", "fear", "neutral")]
    assert unscored_emotions(held_out, task) == {"anger": 1, "fear": 2}  # None is unlabelled, not unscored
    assert unscored_emotions(held_out, Task("pain", ["no_pain", "pain"])) == {}  # pain: every face has a class
    line = epoch_line(3, {"n_samples": 4, "accuracy": 0.5, "macro_f1": 0.25, "cf_sensitivity": None,
                          "cf_invariance": 0.875, "graph_causal_agreement": None, "au_f1": 1.0})
    # an undefined figure (no parent pair) is n/a, not the 0.000 the line used to print
    assert line == "epoch 3: val n 4  acc 0.500  macro-F1 0.250  sens n/a  inv 0.875  agree n/a  AU-F1 1.000"


def test_bf16_autocast_and_gradient_accumulation_on_cpu(tiny_data, tmp_path):
    res = train(_cfg(tiny_data, tmp_path / "bf16", mixed_precision="bf16", grad_accum=2, max_steps=2), progress=False)
    assert res.metrics["global_step"] == 2  # optimizer steps: 4 batches accumulated two by two
    weights = _weights(tmp_path / "bf16")
    floats = [v for v in weights.values() if v.is_floating_point()]  # (BatchNorm's step counters are int64)
    assert floats and all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in floats)


@pytest.mark.parametrize("name", ["reasoner_synth", "reasoner_paper_unbc", "reasoner_paper_affwild2"])
def test_shipped_recipe_configs_load(name):
    cfg = load_train_config(REPO / "recipes" / "configs" / f"{name}.yaml")
    assert cfg.faith == "on" and cfg.loss.lambda_s == 0.5 and cfg.loss.lambda_i == 8.0
    if name != "reasoner_synth":  # the paper's operating point
        assert (cfg.encoder.arch, cfg.lr, cfg.batch_size, cfg.loss.lambda_a) == ("resnet-18", 0.001, 256, 1.0)
