"""`facr audit`: the JSON contract, the report folder, second graphs, oracle figures, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from facr.data.synth import SynthConfig, write_synth
from facr.train import load_train_config, train

CONTRACT = ("n_samples", "accuracy", "macro_f1", "auc", "cf_sensitivity", "cf_invariance", "graph_causal_agreement",
            "graph_causal_agreement_signed", "graph_causal_agreement_label", "graph_causal_agreement_label_signed",
            "pspi_agreement", "pspi_agreement_signed", "active_au_precision", "active_au_recall", "aus_per_frame",
            "per_class")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny synth set with a planted shortcut and a reasoner trained on it (graph: truth)."""
    root = tmp_path_factory.mktemp("audit")
    data = root / "synth"
    write_synth(data, SynthConfig(n=168, seed=0, subjects=14, size=32, shortcut=0.9), workers=1)
    cfg = load_train_config(None, {"data.path": str(data), "data.image_size": 32, "encoder.arch": "resnet-tiny",
                                   "graph": "truth", "batch_size": 32, "epochs": 3, "lr": 0.01,
                                   "out": str(root / "run")})
    train(cfg, progress=False)
    return data, root / "run"


def test_audit_json_holds_the_contract_and_agrees_with_the_training_run(trained, run_cli):
    data, run = trained
    code, out, err = run_cli("audit", "--model", run, "--data", data, "--json")
    assert code == 0, err
    m = json.loads(out)  # exactly one JSON object
    for key in CONTRACT:
        assert key in m, key
    assert m["pspi_agreement"] is None  # the emotion task has no pain class
    trained_metrics = json.loads((run / "metrics.json").read_text())
    # the same pass over the same test split: the numbers the run reported are the audit's
    for key in ("n_samples", "accuracy", "macro_f1", "cf_sensitivity", "cf_invariance", "graph_causal_agreement"):
        assert m[key] == pytest.approx(trained_metrics[key], abs=1e-6), key
    assert m["oracle"]["true_parent_agreement"] == pytest.approx(trained_metrics["true_graph_agreement"], abs=1e-6)
    # per-class counts add up, and the named-AU count is |Pa(ĉ)| of the graph
    assert sum(r["n_labelled"] for r in m["per_class"].values()) == m["n_samples"]
    assert sum(r["n_predicted"] for r in m["per_class"].values()) == m["n_samples"]
    signs = np.array(m["graph_signs"])
    n_parents = {c: int((signs[:, j] != 0).sum()) for j, c in enumerate(m["classes"])}
    expect = sum(n_parents[c] * r["n_predicted"] for c, r in m["per_class"].items()) / m["n_samples"]
    assert m["aus_per_frame"] == pytest.approx(expect)
    # subject-level CIs bracket the pooled value; per-subject values pool back to it
    for key in ("accuracy", "cf_invariance"):
        lo, hi = m["ci95"][key]
        assert lo <= m[key] + 1e-9 and m[key] - 1e-9 <= hi
    n = sum(r["n_samples"] for r in m["per_subject"].values())
    acc = sum(r["accuracy"] * r["n_samples"] for r in m["per_subject"].values()) / n
    assert n == m["n_samples"] and acc == pytest.approx(m["accuracy"])


def test_audit_limit_and_split_select_the_records(trained, run_cli):
    data, run = trained
    code, out, _ = run_cli("audit", "--model", run / "model", "--data", data, "--limit", 7, "--json", "--no-oracle")
    m = json.loads(out)
    assert code == 0 and m["n_samples"] == 7 and "oracle" not in m
    code, out, _ = run_cli("audit", "--model", run, "--data", data, "--split", "all", "--json", "--no-oracle")
    assert json.loads(out)["n_samples"] == 168
    code, out, _ = run_cli("audit", "--model", run, "--data", data, "--split", "all", "--subject", "S01", "--json",
                           "--no-oracle")
    assert json.loads(out)["n_samples"] == 12 and list(json.loads(out)["per_subject"]) == ["S01"]


def test_audit_against_a_second_graph_rescores_the_same_pass(trained, run_cli, repo):
    from facr.audit.evaluate import run_reasoner
    from facr.causal import graph_signs
    from facr.data import formats
    from facr.data.torch_data import FaceTorchDataset, Task
    from facr.graph import load_graph
    from facr.models.reasoner import load_reasoner

    data, run = trained
    code, out, _ = run_cli("audit", "--model", run, "--data", data, "--graph", repo / "graphs/emfacs.json", "--json",
                           "--no-oracle")
    m = json.loads(out)
    assert code == 0 and m["graph"] == "emfacs" and m["model_graph"] == "synth-truth-a"
    # recompute by hand: same records, same model, EMFACS signs
    model, _ = load_reasoner(run / "model")
    recs = [r for r in formats.load("synth", data).records if r.split == "test"]
    ds = FaceTorchDataset(recs, model.config.aus, Task("emotion", model.config.classes), 32)
    emfacs = graph_signs(load_graph(repo / "graphs/emfacs.json"), model.config.aus, model.config.classes)
    ev = run_reasoner(model, ds, emfacs, epsilon=0.1)
    # an independent count from the pass's raw Δ: the top-|Pa(ĉ)| AUs by |Δ_kĉ| against EMFACS's Pa(ĉ),
    # and the CF sensitivity pairs s_kc·Δ_kc > ε on the labelled class
    s = emfacs.numpy()
    delta, agree, sens = ev.delta_pred, [], []
    for n, c in enumerate(ev.predicted):
        pa = set(np.flatnonzero(s[:, c]))
        if pa:
            agree.append(len(set(np.argsort(-np.abs(delta[n]), kind="stable")[:len(pa)]) & pa) / len(pa))
    on_label = ev.delta_on(ev.labels)
    for n, y in enumerate(ev.labels):
        sens += [s[k, y] * on_label[n, k] > 0.1 for k in np.flatnonzero(s[:, y])]
    assert m["graph_causal_agreement"] == pytest.approx(np.mean(agree))
    assert m["cf_sensitivity"] == pytest.approx(np.mean(sens))


def test_audit_out_writes_a_report_with_plots(trained, run_cli, tmp_path):
    from PIL import Image

    data, run = trained
    out_dir = tmp_path / "report"
    code, out, err = run_cli("audit", "--model", run, "--data", data, "--out", out_dir, "--no-progress")
    assert code == 0, err
    assert {p.name for p in out_dir.iterdir()} == {"report.md", "metrics.json", "per_class.png", "effects.png",
                                                   ".facr-output.json"}
    md = (out_dir / "report.md").read_text()
    m = json.loads((out_dir / "metrics.json").read_text())
    assert f"| CF invariance | {m['cf_invariance']:.3f} |" in md and "## Oracle" in md and "![effects.png]" in md
    # per-AU detection: the report's table holds every coded AU, and the AU F1 is the mean of its F1 column
    det = m["au_detection"]
    assert set(det) == set(m["aus"]) and "## AU detection (z > ½), per AU" in md
    f1s = [r["f1"] for r in det.values() if r["n_positive"]]
    assert m["au_f1"] == pytest.approx(sum(f1s) / len(f1s))
    a = next(a for a, r in det.items() if r["n_coded"])
    assert f"| {a} | {det[a]['n_coded']} | {det[a]['n_positive']} | {det[a]['n_called']} |" in md
    for png in ("per_class.png", "effects.png"):
        w, h = Image.open(out_dir / png).size
        assert w > 300 and h > 300
    assert "graph-causal agreement" in out and "oracle shortcut reliance" in out
    # a second audit replaces the folder whole with --overwrite (no temp folders left beside it)
    assert run_cli("audit", "--model", run, "--data", data, "--out", out_dir, "--limit", 5, "--no-oracle",
                   "--overwrite")[0] == 0
    assert json.loads((out_dir / "metrics.json").read_text())["n_samples"] == 5
    assert [p.name for p in tmp_path.iterdir()] == ["report"]


@pytest.mark.parametrize("argv, needle", [
    (["--model", "{tmp}/nothing"], "no such model folder or auditor"),
    (["--model", "{tmp}"], "not something facr can audit"),
    (["--model", "{run}", "--data", "{tmp}/none"], "no such dataset folder"),
    (["--model", "{run}", "--data", "{data}", "--split", "holdout"], "no records in split 'holdout'"),
    (["--model", "{run}", "--data", "{data}", "--subject", "S99"], "subject(s) not in the selected records: S99"),
    (["--model", "{run}", "--data", "{data}", "--graph", "{tmp}/g.json"], "g.json"),
    (["--model", "{run}", "--data", "{data}", "--limit", "0"], "facr: --limit: must be >= 1, got 0"),
    (["--model", "{run}", "--data", "{data}", "--epsilon=nan"], "facr: --epsilon: must be a finite number >= 0"),
    (["--model", "{run}", "--data", "{data}", "--epsilon=-1"], "facr: --epsilon: must be a finite number >= 0"),
    (["--model", "{run}", "--data", "{data}", "--margin=-5"], "facr: --margin: must be a finite number >= 0"),
    (["--model", "{run}", "--data", "{data}", "--graph", "pspi"], "--graph: pspi has none of the model's classes"),
])
def test_audit_bad_input_is_one_line_naming_the_file(trained, run_cli, tmp_path, argv, needle):
    data, run = trained
    argv = [a.format(tmp=tmp_path, run=run, data=data) for a in argv]
    code, out, err = run_cli("audit", *argv, "--json")
    assert code == 2 and out == ""
    assert err.startswith("facr: ") and err.count("\n") == 1 and needle in err


def test_counterfactual_rendering_reproduces_the_written_images_and_moves_only_the_background(trained):
    from facr.data import formats
    from facr.data.synth import SynthConfig, read_config, render_counterfactual, sample_scene

    data, _ = trained
    config = SynthConfig.from_dict(read_config(data)["config"])
    recs = [r for r in formats.load("synth", data).records if r.split == "test"][:6]
    index = [r.meta["index"] for r in recs]
    scene = sample_scene(config)
    same = render_counterfactual(scene, index)
    assert all(np.array_equal(same[i], recs[i].image) for i in range(len(recs)))  # PNG is lossless
    other = render_counterfactual(scene, index, cue=(config.shortcut_classes.index(recs[0].meta["cue"]) + 3) % 7)
    changed = np.abs(other[0].astype(int) - same[0].astype(int)).max(axis=2) > 0
    assert changed[0, 0] and changed[-1, -1]  # the corners are background
    assert changed[12:20, 12:20].mean() < 0.2  # the face centre barely moves


class _HueReader(torch.nn.Module):
    """A 'model' that reads only the background hue at a corner: the pure shortcut."""

    def __init__(self, n):
        super().__init__()
        self.n = n
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, pixel_values):
        import colorsys

        corner = pixel_values[:, 0, 0, :].float() / 255.0 if pixel_values.shape[-1] == 3 else pixel_values[:, :, 0, 0]
        hue = torch.tensor([colorsys.rgb_to_hsv(*map(float, c))[0] for c in corner])
        centres = torch.arange(self.n) / self.n
        dist = torch.minimum((hue[:, None] - centres).abs(), 1 - (hue[:, None] - centres).abs())
        return type("Out", (), {"logits": -20.0 * dist})()


def test_shortcut_reliance_is_one_for_a_hue_reader_and_zero_when_au_effects_dominate(trained):
    from facr.audit.evaluate import Evaluation
    from facr.audit.oracle import shortcut_reliance
    from facr.data import formats
    from facr.data.torch_data import FaceTorchDataset, Task

    data, _ = trained
    classes = ["neutral", "happiness", "sadness", "surprise", "fear", "anger", "disgust"]
    recs = [r for r in formats.load("synth", data).records if r.split == "test"][:12]
    ds = FaceTorchDataset(recs, ["AU1", "AU2"], Task("emotion", classes), 32)
    model = _HueReader(len(classes))
    logits = model(ds.__getitems__(list(range(len(ds))))["pixel_values"]).logits.numpy()

    def ev_with(au_effect: float) -> Evaluation:
        cf = logits[:, None, :] - au_effect  # every do(z_k = 0) moves every logit by au_effect
        return Evaluation(classes, ["AU1", "AU2"], ds.labels, logits, np.repeat(cf, 2, axis=1), np.zeros((12, 2)),
                          ds.au_targets, ds.au_mask, np.array([r.subject for r in recs], dtype=object),
                          np.zeros((2, len(classes))))

    relies = shortcut_reliance(model, ds, ev_with(0.0), data)
    assert relies["shortcut_reliance"] == 1.0 and relies["prediction_follows_cue"] == 1.0
    assert relies["cue_effect_mean_abs"] > 1.0
    assert shortcut_reliance(model, ds, ev_with(100.0), data)["shortcut_reliance"] == 0.0

    # a logit nothing moves (neutral under head: graph), recomputed in another batch, differs by float
    # rounding only: that is no reliance; a real hue effect, however small, still is
    class Scaled(torch.nn.Module):
        def __init__(self, scale):
            super().__init__()
            self.scale, self.hue = scale, _HueReader(len(classes))

        def forward(self, pixel_values):
            return type("Out", (), {"logits": self.scale * self.hue(pixel_values).logits})()

    for scale, expected in ((1e-8, 0.0), (1e-3, 1.0)):
        scaled = Scaled(scale)
        logits = scaled(ds.__getitems__(list(range(len(ds))))["pixel_values"]).logits.numpy()
        assert shortcut_reliance(scaled, ds, ev_with(0.0), data)["shortcut_reliance"] == expected, scale


def test_pain_audit_scores_pspi_agreement_on_pain_predictions(trained, run_cli, tmp_path):
    from facr.models.reasoner import load_reasoner, save_reasoner

    data, _ = trained
    cfg = load_train_config(None, {"data.path": str(data), "data.image_size": 32, "encoder.arch": "resnet-tiny",
                                   "data.task": "pain", "graph": "pspi", "batch_size": 32, "epochs": 2, "lr": 0.01,
                                   "out": str(tmp_path / "pain")})
    train(cfg, progress=False)
    # a tiny model may never predict pain; a large pain bias makes every prediction pain, so the PSPI
    # figures are always defined (a bias moves no do() effect: Δ is a difference of logits)
    model, graph = load_reasoner(tmp_path / "pain" / "model")
    last = [m for m in model.head.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.bias[1] += 100.0
    save_reasoner(model, graph, tmp_path / "pain" / "model", overwrite=True)
    code, out, err = run_cli("audit", "--model", tmp_path / "pain", "--data", data, "--split", "all", "--json",
                             "--no-oracle")
    assert code == 0, err
    m = json.loads(out)
    assert m["task"] == "pain" and m["classes"] == ["no_pain", "pain"] and "f1_positive" in m
    pain, no_pain = m["per_class"]["pain"], m["per_class"]["no_pain"]
    assert pain["n_predicted"] == m["n_samples"] == 168 and no_pain["n_predicted"] == 0
    assert no_pain["pspi_agreement"] is None
    # Pa(pain) in the PSPI graph is exactly the six PSPI AUs, all raising pain: the PSPI figures are the
    # graph-causal ones, signed and unsigned, and six AUs are invoked per frame
    assert m["pspi_agreement"] == pytest.approx(pain["pspi_agreement"])
    assert m["pspi_agreement"] == pytest.approx(m["graph_causal_agreement"])
    assert m["pspi_agreement_signed"] == pytest.approx(m["graph_causal_agreement_signed"])
    assert m["pspi_agreement_signed"] <= m["pspi_agreement"] and m["aus_per_frame"] == 6.0


def test_gathered_effects_equal_the_full_delta():
    from facr.audit.evaluate import Evaluation

    rng = np.random.default_rng(0)
    N, K, C = 50, 5, 3
    ev = Evaluation(["a", "b", "c"], ["AU1", "AU2", "AU4", "AU6", "AU12"], rng.integers(0, C, N),
                    rng.normal(size=(N, C)).astype(np.float32), rng.normal(size=(N, K, C)).astype(np.float32),
                    rng.random((N, K)), np.zeros((N, K)), np.zeros((N, K)), np.array(["s"] * N, dtype=object),
                    np.zeros((K, C)))
    full = ev.delta  # [N, K, C]
    assert np.allclose(ev.delta_pred, full[np.arange(N), :, ev.predicted], atol=1e-6)
    assert np.allclose(ev.mean_delta, full.mean(axis=0), atol=1e-5)
