"""Stage 2 training on a tiny backbone: targets, loss, checkpoint round trip, CLI, recipe."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from facr.verbalizer.train import TEMPLATES, rationale_target

REPO = Path(__file__).resolve().parents[2]


def test_rationale_targets_name_exactly_the_given_aus_and_are_well_formed():
    from facr import au
    from facr.verbalizer.model import clean_text
    from facr.verbalizer.wellformed import check_rationale

    rng = random.Random(0)
    seen = set()
    for _ in range(40):
        text = rationale_target(["AU6", "AU12", "AU25"], "happiness", rng, 0.87)
        assert [f"AU{n}" for n in au.extract(text)] == ["AU6", "AU12", "AU25"] and "happiness" in text
        assert check_rationale(clean_text(text), ["AU6", "AU12", "AU25"], "happiness") == [], text
        assert text.endswith("happiness (p = 0.87).")
        seen.add(text)
    assert len(seen) == len(TEMPLATES)  # varied wording
    assert au.extract(rationale_target([], "neutral", rng)) == []
    assert check_rationale(rationale_target([], "neutral", rng, 0.4), [], "neutral") == []


def test_training_lowers_the_loss_and_the_checkpoint_reloads_to_the_same_rationales(trained_verbalizer):
    from facr.verbalizer.model import load_verbalizer
    from facr.verbalizer.plan import RationalePlan
    from facr.verbalizer.wellformed import check_rationale

    out, m = trained_verbalizer
    # only the soft prompt and the AU rows learn, on a frozen *random* 2-layer LM (a uniform guess over
    # its ~260 pieces costs ln 260 = 5.56 nats): the loss still falls, by 0.25 nats (5.21 -> 4.96)
    assert m["steps"] == 60 and m["loss_last"] < m["loss_first"] - 0.15, m
    ckpt = out / "verbalizer"
    assert {p.name for p in ckpt.iterdir()} == {"verbalizer.safetensors", "config.json", ".facr-output.json"}
    examples = json.loads((out / "examples.json").read_text())
    v = load_verbalizer(ckpt)
    z = torch.tensor([e["z"] for e in examples])
    plans = [RationalePlan(e["target_aus"], e["emotion"], e["probability"]) for e in examples]
    assert v.generate(z, [e["emotion"] for e in examples], plans=plans) == [e["rationale"] for e in examples]
    for e in examples:  # plan and gate: exactly the target, nothing named below z = 1/2
        assert e["named"] == e["target_aus"] and all(e["z"][v.config.aus.index(a)] >= 0.5 for a in e["named"])
        assert check_rationale(e["rationale"], e["target_aus"], e["emotion"]) == []


def test_train_verbalizer_cli_and_recipe_run(reasoner, tmp_path, run_cli):
    data, run = reasoner
    common = ["--reasoner", run, "--data", data, "--backbone", "tiny-gemma3", "--max-steps", 3, "--limit", 16]
    code, out, err = run_cli("train", "verbalizer", *common, "--out", tmp_path / "cli", "--json", "--no-progress")
    assert code == 0, err
    assert json.loads(out)["steps"] == 3 and json.loads(out)["backbone"] == "tiny-gemma3"
    code, out, err = run_cli("train", "verbalizer", *common, "--out", tmp_path / "cli2", "--no-progress")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("wrote the verbalizer: 3 steps on tiny-gemma3")
    shown = json.loads((tmp_path / "cli2" / "examples.json").read_text())
    assert len(lines) == 1 + min(4, len(shown))
    assert all(f'"{e["rationale"]}"' in line for e, line in zip(shown, lines[1:]))
    proc = subprocess.run([sys.executable, str(REPO / "recipes" / "train_verbalizer.py"), *map(str, common),
                           "--out", str(tmp_path / "recipe"), "--no-progress"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["steps"] == 3
    code, _, err = run_cli("train", "verbalizer", "--reasoner", tmp_path / "nope", "--data", data,
                           "--out", tmp_path / "x")
    assert code == 2 and "nope" in err and err.count("\n") == 1


def test_checkpoint_names_its_reasoner(trained_verbalizer, reasoner):
    out, _ = trained_verbalizer
    cfg = json.loads((out / "verbalizer" / "config.json").read_text())
    assert cfg["reasoner"] == str(reasoner[1]) and cfg["backbone"] == "tiny-qwen3"


def test_two_process_accelerate_launch_trains_the_verbalizer(reasoner, tmp_path):
    import os

    from facr.utils import free_port

    data, run = reasoner
    port = free_port()
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(REPO / "recipes" / "accelerate" / "cpu_2proc.yaml"), "--main_process_port", str(port),
           str(REPO / "recipes" / "train_verbalizer.py"), "--reasoner", str(run), "--data", str(data),
           "--backbone", "tiny-qwen3", "--max-steps", "4", "--limit", "32", "--out", str(out), "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_processes"] == 2 and metrics["steps"] == 4
    assert (out / "verbalizer" / "verbalizer.safetensors").exists()


@pytest.mark.parametrize("name", ["verbalizer_synth", "verbalizer_paper_affwild2"])
def test_shipped_verbalizer_configs_load(name):
    from facr.verbalizer.train import load_verbalizer_train_config

    cfg = load_verbalizer_train_config(REPO / "recipes" / "configs" / f"{name}.yaml")
    assert cfg.verbalizer.n_prompt == 8 and cfg.verbalizer.mode == "gated" and cfg.verbalizer.beta is None
    assert cfg.verbalizer.backbone == {"verbalizer_synth": "smollm2-135m",
                                       "verbalizer_paper_affwild2": "qwen3.5-0.8b"}[name]
    assert cfg.verbalizer.load_in_4bit is (name != "verbalizer_synth")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error")
def test_4bit_training_without_a_gpu_is_one_line(reasoner, tmp_path, run_cli):
    data, run = reasoner
    code, _, err = run_cli("train", "verbalizer", "--reasoner", run, "--data", data, "--backbone", "tiny-qwen3",
                           "--load-in-4bit", "--max-steps", 1, "--limit", 4, "--out", tmp_path / "q")
    assert code == 2 and "4-bit loading needs a CUDA GPU" in err and err.count("\n") == 1


def test_fluent_targets_keep_the_better_half_of_each_plan_shapes_wordings_by_the_backbones_nll():
    """The training targets are drawn from the realisations the scorer (the frozen backbone's NLL)
    reads best, per plan shape, from sample plans of that shape; the half kept is the best half."""
    from facr.verbalizer.plan import RationalePlan
    from facr.verbalizer.train import fluent_realisations, plan_shape

    plans = [RationalePlan(["AU12", "AU6"], "happiness", 0.9), RationalePlan(["AU12"], "happiness", 0.7),
             RationalePlan(["AU1", "AU15", "AU12"], "sadness", 0.6, against=["AU12"]),
             RationalePlan(["AU4"], "happiness", 0.4, against=["AU4"]), RationalePlan([], "neutral", 0.8)]
    assert [plan_shape(p) for p in plans] == ["support", "support", "contrast", "against", "none"]
    seen = []

    def nll(texts, emotions):  # a backbone that prefers "which points to" and short texts
        seen.extend(texts)
        return [len(t) / 100 - ("which points to" in t) for t in texts]

    fluent = fluent_realisations(plans, nll)
    assert set(fluent) == {"support", "contrast", "against", "none"}
    assert len(fluent["support"]) == 5 and len(fluent["contrast"]) == 9 and len(fluent["against"]) == 1
    texts = [RationalePlan(["AU12", "AU6"], "happiness").text(index=i) for i in fluent["support"]]
    assert sum("which points to" in t for t in texts) == 2  # both "which points to" wordings are kept
    assert fluent["against"] == [1]  # "AU4 (brow lowerer) speaks against happiness": the shorter one
    assert len(seen) == 2 * 11 + 18 + 2 + 2  # every realisation of every sample plan, scored once
