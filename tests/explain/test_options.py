"""The neighbouring methods as training options: AGCM's head (map loss) and the circumplex OT term."""
import json
import math

import numpy as np
import pytest
import torch

from facr.circumplex import ANGLES, cost_matrix, ot_loss
from facr.data import formats
from facr.data.torch_data import FaceTorchDataset, Task
from facr.losses import LossWeights, facr_loss
from facr.models.agcm import map_loss
from facr.models.reasoner import load_reasoner
from facr.train import load_train_config, train


def _test_predictions(run, data) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(labels, predictions, classes) of a run's model on the test split: the records read from the
    dataset and one forward pass, apart from facr's evaluation code."""
    model, _ = load_reasoner(run / "model")
    recs = [r for r in formats.load("synth", data).records if r.split == "test"]
    with torch.no_grad():
        logits = model.eval()(torch.from_numpy(np.stack([r.image for r in recs]))).logits
    classes = model.config.classes
    return np.array([classes.index(r.emotion) for r in recs]), logits.argmax(1).numpy(), classes


def _test_map_loss(run, data):
    model, _ = load_reasoner(run / "model")
    recs = [r for r in formats.load("synth", data).records if r.split == "test"]
    ds = FaceTorchDataset(recs, model.config.aus, Task("emotion", model.config.classes), 32, rois=True)
    batch = ds.__getitems__(np.arange(len(ds)))
    with torch.no_grad():
        att = model(batch["pixel_values"]).attention
    return float(map_loss(att, batch["roi"], batch["roi_mask"]))


def test_agcm_map_loss_pulls_the_concept_attention_onto_the_au_regions(reasoner, agcm_run, tmp_path):
    data, _ = reasoner
    off = tmp_path / "no-map-loss"
    train(load_train_config(None, {"data.path": str(data), "data.image_size": 32, "encoder.arch": "resnet-tiny",
                                   "graph": "truth", "head": "agcm", "loss.lambda_m": 0.0, "batch_size": 32,
                                   "epochs": 3, "lr": 0.01, "out": str(off)}), progress=False)
    with_loss, without = _test_map_loss(agcm_run, data), _test_map_loss(off, data)
    # held-out faces: the supervised attention is closer (cosine) to the AU regions
    assert with_loss < without - 0.05, (with_loss, without)
    m = json.loads((agcm_run / "metrics.json").read_text())
    # the AGCM run's audit figures are its own model's: accuracy recomputed apart from facr's evaluation
    labels, predicted, _ = _test_predictions(agcm_run, data)
    assert m["n_samples"] == len(labels)
    assert m["accuracy"] == pytest.approx(float(np.mean(labels == predicted)), abs=1e-6)


def test_the_ot_term_is_added_with_its_weight_and_the_uniform_cost_is_one_minus_p_y():
    torch.manual_seed(0)
    B, K, C = 6, 3, 4
    classes = ["neutral", "happiness", "sadness", "anger"]
    logits = torch.randn(B, C)
    from facr.causal import Effects

    eff = Effects(logits, logits.unsqueeze(1).expand(B, K, C).clone(), 0.0)
    z = torch.rand(B, K)
    y = torch.tensor([0, 1, 2, 3, 1, 2])
    args = (eff, z, torch.logit(z), y, torch.zeros(B, K), torch.zeros(B, K), torch.zeros(K, C, dtype=torch.int8))
    base = facr_loss(*args, LossWeights(lambda_s=0, lambda_i=0))
    uni = facr_loss(*args, LossWeights(lambda_s=0, lambda_i=0, circumplex_ot=0.7, ot_cost="uniform"),
                    ot_cost=torch.as_tensor(cost_matrix(classes, "uniform")))
    p_y = torch.softmax(logits, -1).gather(1, y[:, None]).squeeze(1)
    assert float(uni.ot) == pytest.approx(float((1 - p_y).mean()), abs=1e-6)
    assert float(uni.total) == pytest.approx(float(base.total) + 0.7 * float(uni.ot), abs=1e-6)
    circ = facr_loss(*args, LossWeights(lambda_s=0, lambda_i=0, circumplex_ot=1.0),
                     ot_cost=torch.as_tensor(cost_matrix(classes)))
    assert float(circ.ot) == pytest.approx(float(ot_loss(logits, y, cost_matrix(classes))), abs=1e-6)
    assert base.ot is None and "ot" in uni.as_floats()


def test_training_with_the_ot_term_reports_the_affective_distance_and_a_pain_task_is_refused(reasoner, tmp_path,
                                                                                              run_cli):
    data, _ = reasoner
    common = ["--data", str(data), "--arch", "resnet-tiny", "--epochs", "1", "--batch-size", "32", "--graph", "truth",
              "--no-progress"]
    code, out, err = run_cli("train", "reasoner", *common, "--circumplex-ot", "1", "--ot-cost", "uniform",
                             "--out", str(tmp_path / "ot"))
    assert code == 0, err
    m = json.loads((tmp_path / "ot" / "metrics.json").read_text())
    cfg = json.loads((tmp_path / "ot" / "config.json").read_text())
    assert cfg["loss"]["circumplex_ot"] == 1.0 and cfg["loss"]["ot_cost"] == "uniform"
    # the distances recomputed by hand from Russell's angles (neutral at the centre), on the run's own errors
    labels, predicted, classes = _test_predictions(tmp_path / "ot", data)
    angle = {c: math.radians(ANGLES[c][1]) for c in classes if c != "neutral"}
    place = {c: (math.cos(a), math.sin(a)) for c, a in angle.items()} | {"neutral": (0.0, 0.0)}

    def d(i: int, j: int) -> float:
        return math.dist(place[classes[i]], place[classes[j]])

    wrong = [(y, p) for y, p in zip(labels, predicted) if y != p]
    assert wrong  # a one-epoch model errs; the figures are about its errors
    assert m["affective_error_distance"] == pytest.approx(np.mean([d(y, p) for y, p in wrong]), abs=1e-5)
    chance = [np.mean([d(y, j) for j in range(len(classes)) if j != y]) for y, _ in wrong]
    assert m["affective_chance_distance"] == pytest.approx(np.mean(chance), abs=1e-5)
    code, out, err = run_cli("train", "reasoner", *common, "--circumplex-ot", "1", "--out", str(tmp_path / "pain"),
                             "--graph", "pspi")
    assert code == 2 and "loss.circumplex_ot" in err and "no_pain" in err and len(err.strip().splitlines()) == 1
