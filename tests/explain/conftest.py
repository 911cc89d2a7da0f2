from pathlib import Path

import pytest

from facr.train import load_train_config, train


@pytest.fixture(scope="session")
def agcm_run(reasoner, tmp_path_factory) -> Path:
    """A head: agcm reasoner trained on the shared tiny benchmark (its run folder)."""
    data, _ = reasoner
    out = tmp_path_factory.mktemp("agcm") / "run"
    train(load_train_config(None, {"data.path": str(data), "data.image_size": 32, "encoder.arch": "resnet-tiny",
                                   "graph": "truth", "head": "agcm", "batch_size": 32, "epochs": 3, "lr": 0.01,
                                   "out": str(out)}), progress=False)
    return out
