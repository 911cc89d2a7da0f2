"""Test-wide settings: offline, headless, seeded."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("MPLBACKEND", "Agg")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from facr.utils import seed_everything  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


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
