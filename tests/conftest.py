"""Test-wide settings: offline, headless, seeded."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("MPLBACKEND", "Agg")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

from facr.data.synth import SynthConfig, write_synth  # noqa: E402
from facr.train import load_train_config, train  # noqa: E402
from facr.utils import seed_everything  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

# hypothesis draws the same examples on every run ("facr", the default), so that `make test` and CI pass or fail
# on the code alone; HYPOTHESIS_PROFILE=explore draws new ones each run, to look for failures (development.md)
settings.register_profile("facr", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "facr"))


@pytest.fixture(autouse=True)
def _seeded():
    seed_everything(0)


@pytest.fixture
def repo() -> Path:
    """The repository root (for shipped files such as graphs/emfacs.json)."""
    return REPO


@pytest.fixture
def run_cli(capsys):
    """Run ``facr`` in-process: returns (exit code, stdout, stderr)."""
    from facr.cli import main

    def run(*argv):
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


# Shared Stage-2 fixtures (the verbalizer and chat tests): a tiny synthetic dataset, a reasoner trained
# on it, and a verbalizer trained on that reasoner with a tiny from-config backbone (about a minute, once
# per session).
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
