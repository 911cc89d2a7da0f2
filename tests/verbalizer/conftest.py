"""Shared Stage-2 fixtures: a tiny synthetic dataset, a reasoner trained on it, and a verbalizer
trained on that reasoner with a tiny from-config backbone (about a minute, once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from facr.data.synth import SynthConfig, write_synth
from facr.train import load_train_config, train


@pytest.fixture(scope="session")
def reasoner(tmp_path_factory) -> tuple[Path, Path]:
    """(dataset folder, reasoner run folder)."""
    root = tmp_path_factory.mktemp("verb")
    data = root / "synth"
    write_synth(data, SynthConfig(n=120, seed=0, subjects=6, size=32), workers=1)
    train(load_train_config(None, {"data.path": str(data), "data.image_size": 32, "encoder.arch": "resnet-tiny",
                                   "graph": "truth", "batch_size": 32, "epochs": 2, "lr": 0.01,
                                   "out": str(root / "reasoner")}), progress=False)
    return data, root / "reasoner"


@pytest.fixture(scope="session")
def trained_verbalizer(reasoner, tmp_path_factory) -> tuple[Path, dict]:
    """(verbalizer run folder, its metrics): 60 steps on tiny-qwen3."""
    from facr.verbalizer.train import load_verbalizer_train_config, train_verbalizer

    data, run = reasoner
    out = tmp_path_factory.mktemp("verbalizer") / "v"
    cfg = load_verbalizer_train_config(None, {"reasoner": str(run), "data": str(data), "limit": 48,
                                              "verbalizer.backbone": "tiny-qwen3", "verbalizer.n_prompt": 4,
                                              "verbalizer.prompt_hidden": 32, "verbalizer.max_new_tokens": 12,
                                              "max_steps": 60, "lr": 0.003, "out": str(out)})
    return out, train_verbalizer(cfg, progress=False)
