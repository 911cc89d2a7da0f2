import json

import numpy as np
import pytest
import torch
from PIL import Image

from facr.audit.metrics import invoked_aus
from facr.causal import graph_signs
from facr.data import formats
from facr.data.torch_data import FaceTorchDataset, Task
from facr.explain.truth import drawn, region_masks
from facr.models.reasoner import load_reasoner


@pytest.fixture(scope="module")
def face_png(reasoner, tmp_path_factory):
    data, _ = reasoner
    rec = next(r for r in formats.load("synth", data).records if r.split == "test" and r.active_aus())
    path = tmp_path_factory.mktemp("face") / "face.png"
    Image.fromarray(rec.image).save(path)
    return path


def test_explain_maps_draws_one_overlay_per_invoked_au(reasoner, face_png, tmp_path, run_cli):
    _, run = reasoner
    out = tmp_path / "overlay.png"
    code, stdout, err = run_cli("explain", "maps", "--model", run, "--image", face_png, "--crop", "--out", out,
                                "--json")
    assert code == 0, err
    summary = json.loads(stdout)
    model, graph = load_reasoner(run / "model")
    x = torch.from_numpy(np.array(Image.open(face_png)))[None]
    with torch.no_grad():
        o = model(x, effects="batched")
    signs = graph_signs(graph, model.config.aus, model.config.classes)
    expected = [model.config.aus[k] for k in invoked_aus(o.effects, signs)[0]]
    assert set(summary["aus"]) == set(expected) and expected  # (JSON keys are sorted; the PNG keeps the order)
    assert summary["predicted"] == model.config.classes[int(o.logits.argmax())]
    assert summary["method"] == "gradcam"
    for a, info in summary["aus"].items():
        assert info["z"] == pytest.approx(float(o.z[0, model.config.aus.index(a)]), abs=1e-5)
        assert 0 <= info["peak"][0] <= 1 and 0 <= info["peak"][1] <= 1
    img = Image.open(out)
    assert img.format == "PNG" and img.width > 200
    code, stdout, err = run_cli("explain", "maps", "--model", run, "--image", face_png, "--crop", "--out", out,
                                "--method", "cefam", "--au", "AU12", "--au", "au 6", "--overwrite")
    assert code == 0 and "AU12" in stdout and "AU6" in stdout and "(cefam)" in stdout


def test_explain_maps_errors_are_one_line(reasoner, face_png, tmp_path, run_cli):
    _, run = reasoner
    out = tmp_path / "o.png"
    cases = [(["--method", "rollout"], "needs a ViT"), (["--au", "AU45"], "not in this model's latent"),
             (["--method", "agcm"], "agcm")]
    for extra, msg in cases:
        code, _, err = run_cli("explain", "maps", "--model", run, "--image", face_png, "--crop", "--out", out, *extra)
        assert code == 2 and msg in err and len(err.strip().splitlines()) == 1, err
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    code, _, err = run_cli("explain", "maps", "--model", run, "--image", bad, "--out", out)
    assert code == 2 and "bad.png" in err
    code, _, err = run_cli("explain", "maps", "--model", tmp_path, "--image", face_png, "--out", out)
    assert code == 2 and "not a facr reasoner checkpoint" in err
    assert not out.exists()  # nothing half-written


def test_audit_maps_scores_every_method_on_the_benchmark_masks(reasoner, agcm_run, run_cli):
    data, run = reasoner
    code, stdout, err = run_cli("audit", "--model", agcm_run, "--data", data, "--maps", "--json", "--no-oracle")
    assert code == 0, err
    m = json.loads(stdout)
    maps = m["maps"]
    assert set(maps["methods"]) == {"gradcam", "cefam", "agcm", "random"}
    assert maps["primary"] == "agcm" and m["nra"] == maps["methods"]["agcm"]["nra"]
    assert maps["ground_truth"] == "benchmark masks"
    # the instances: every (test face, AU) the face shows and the benchmark draws
    model, _ = load_reasoner(agcm_run / "model")
    recs = [r for r in formats.load("synth", data).records if r.split == "test"]
    ds = FaceTorchDataset(recs, model.config.aus, Task("emotion", model.config.classes), 32)
    n = sum(int((drawn(r, model.config.aus) & region_masks(r, model.config.aus, 32)[1]).sum()) for r in ds.records)
    for name, sc in maps["methods"].items():
        assert sc["n"] + sc["skipped"] == n, name
        assert 0 <= sc["hit_rate"] <= 1 and set(sc["per_au"]) <= set(model.config.aus)
    assert abs(maps["methods"]["random"]["nra"]) < 0.1  # the baseline sits at chance
    # AGCM's attention is supervised by the training faces' regions: it beats the random maps on test faces
    assert maps["methods"]["agcm"]["nra"] > maps["methods"]["random"]["nra"] + 0.2
    agree = maps["contribution_agreement"]
    assert set(agree["per_class"]) <= set(model.config.classes)
    assert all(v["rho_mean_vectors"] is None or -1 <= v["rho_mean_vectors"] <= 1 for v in agree["per_class"].values())
    code, stdout, err = run_cli("audit", "--model", run, "--data", data, "--maps", "--map-method", "agcm", "--json")
    assert code == 2 and "agcm" in err
