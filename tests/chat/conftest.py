"""Chat fixtures: the explainer on the shared tiny reasoner + verbalizer, and faces to show it."""

import os

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata


@pytest.fixture(scope="session")
def chat_models(reasoner, tmp_path_factory):
    """(reasoner run, verbalizer run) for the chat: the shared tiny benchmark, a reasoner trained 12 epochs
    (the shared 2-epoch one predicts one class everywhere, and no do() flips it) and a verbalizer trained
    on it (tiny-qwen3, 40 steps); about 40 s."""
    from facr.train import load_train_config, train
    from facr.verbalizer.train import load_verbalizer_train_config, train_verbalizer

    data, _ = reasoner
    root = tmp_path_factory.mktemp("chat")
    train(load_train_config(None, {"data.path": str(data), "data.image_size": 32, "encoder.arch": "resnet-tiny",
                                   "graph": "truth", "batch_size": 32, "epochs": 12, "lr": 0.01,
                                   "out": str(root / "reasoner")}), progress=False)
    train_verbalizer(load_verbalizer_train_config(None, {
        "reasoner": str(root / "reasoner"), "data": str(data), "limit": 48, "verbalizer.backbone": "tiny-qwen3",
        "verbalizer.n_prompt": 4, "verbalizer.prompt_hidden": 32, "verbalizer.max_new_tokens": 12,
        "max_steps": 40, "lr": 0.003, "out": str(root / "verbalizer")}), progress=False)
    return root / "reasoner", root / "verbalizer"


@pytest.fixture(scope="session")
def explainer(chat_models):
    """The chat models; with FACR_CHAT_DEMO=1 (run from the repository root after `make demo`), the demo's
    FACR reasoner and SmolLM2 verbalizer instead: that is how the README's screenshot is taken."""
    from facr.chat import Explainer

    if os.environ.get("FACR_CHAT_DEMO"):
        return Explainer.load()
    run, verbalizer = chat_models
    return Explainer.load(str(run), str(verbalizer))


@pytest.fixture(scope="session")
def faces(reasoner):
    """Test-split faces of the tiny benchmark, as [S, S, 3] uint8 arrays."""
    from datasets import load_from_disk

    data, _ = reasoner
    return [np.asarray(r["image"].convert("RGB")) for r in load_from_disk(str(data))["test"]]


@pytest.fixture(scope="session")
def astronaut(tmp_path_factory):
    """A real photograph shipped inside scikit-image (Eileen Collins, NASA, public domain), 512x512."""
    path = tmp_path_factory.mktemp("faces") / "astronaut.png"
    Image.fromarray(skdata.astronaut()).save(path)
    return path


@pytest.fixture(scope="session")
def flip(explainer, faces):
    """(face, AU, value) of the first single-AU do() that changes the prediction, scanning the faces in order."""
    for pixels in faces:
        r = explainer.read(pixels)
        for a in explainer.aus:
            for v in (0.0, 1.0):
                if explainer.what_if(r, {a: v}).predicted != r.predicted:
                    return pixels, a, v
    raise AssertionError("no single-AU do() changes any prediction")


@pytest.fixture(scope="session")
def served(explainer, reasoner):
    """The app on a free loopback port: (URL, gallery)."""
    from facr.chat.ui import build_app, gallery_samples, launch
    from facr.utils import free_port

    data = "demo-out/synth" if os.environ.get("FACR_CHAT_DEMO") else reasoner[0]
    gallery = gallery_samples(data, explainer.classes)
    app = build_app(explainer, gallery)
    port = free_port()
    launch(app, "127.0.0.1", port, block=False)  # as `facr chat` serves it: its upload limit included
    try:
        yield f"http://127.0.0.1:{port}/", gallery
    finally:
        app.close()
