"""The AU head: a reasoner on any front end. The shipped real-face head, retrained by its own command;
EMFACS prototype rows in every table format read as their emotion with the prototype's AUs invoked;
``facr train head`` on the SCM and on a labelled table; bad input in one line."""

from __future__ import annotations

import json
import shlex
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from facr.causal import do, graph_signs
from facr.data.synth import SYNTH_AUS, SynthConfig, sample_scene
from facr.frontends.head import (
    REALFACE_COMMAND,
    HeadConfig,
    HeadTrainConfig,
    default_head_path,
    evaluate,
    load_default_head,
    load_head,
    read_faces,
    scm_data,
    train_head,
)
from facr.frontends.mediapipe import SEEN_AUS
from facr.frontends.tables import FORMAT_AUS, OPENFACE3_AUS, intensity_to_z, read_au_table
from facr.graph.prototypes import EMFACS_PROTOTYPES
from facr.losses import LossWeights
from facr.models.reasoner import CheckpointError

EMOTIONS = ("happiness", "sadness", "surprise", "fear", "anger", "disgust")


# ------------------------------------------------------------------ prototype rows in each tool's layout
def prototype_table(tmp_path, fmt: str, emotions=(*EMOTIONS, "neutral")):
    """One row per emotion in ``fmt``'s layout: the prototype's AUs present at intensity 3 (probability 0.9),
    every other AU the tool codes absent (0, probability 0.05)."""
    numbers = [int(a[2:]) for a in FORMAT_AUS[fmt]]
    lines = []
    for i, e in enumerate(emotions):
        on = set(EMFACS_PROTOTYPES.get(e, ()))
        if fmt == "openface":
            r_aus = [n for n in numbers if n != 28]  # AU28: presence only
            if not lines:
                lines.append(", ".join(["frame", "face_id", "timestamp", "confidence", "success",
                                        *(f"AU{n:02d}_r" for n in r_aus), *(f"AU{n:02d}_c" for n in numbers)]))
            lines.append(", ".join([str(i + 1), "0", f"{i / 30:.3f}", "0.98", "1",
                                    *("3.00" if n in on else "0.00" for n in r_aus),
                                    *("1" if n in on else "0" for n in numbers)]))
        elif fmt == "pyfeat":
            if not lines:
                lines.append(",".join(["frame", "FaceRectX", "FaceRectY", "FaceRectWidth", "FaceRectHeight",
                                       "FaceScore", *(f"AU{n:02d}" for n in numbers), "input"]))
            lines.append(",".join([str(i), "10", "20", "100", "120", "0.99",
                                   *("0.9" if n in on else "0.05" for n in numbers), "faces.mp4"]))
        elif fmt == "openface3":
            if not lines:
                lines.append("timestamp,video_path,frame_index,face_id,face_detection,landmarks,emotion,gaze_yaw,"
                             "gaze_pitch,action_units")
            scores = ", ".join("0.9" if int(a[2:]) in on else "0.05" for a in OPENFACE3_AUS)
            lines.append(f'2025-06-01 10:00:00,faces.mp4,{i},0,"[1.0, 2.0, 50.0, 60.0, 0.99]",,0,0.0,0.0,'
                         f'"[[{scores}]]"')
        else:  # libreface: BP4D detection, DISFA intensity
            det, inten = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24), (1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26)
            if not lines:
                lines.append(",".join(["frame_idx", "frame_time_in_ms", "pitch", "yaw", "roll",
                                       *(f"au_{n}" for n in det), *(f"au_{n}_intensity" for n in inten),
                                       "facial_expression"]))
            lines.append(",".join([str(i), str(33 * i), "0.0", "0.0", "0.0", *("1" if n in on else "0" for n in det),
                                   *("3.0" if n in on else "0.0" for n in inten), "Neutral"]))
    path = tmp_path / f"{fmt}.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# OpenFace 3.0 codes 8 AUs; the shipped head sees five of them (AU1, AU2, AU4, AU12, AU26), too few to tell
# fear from surprise (no AU5, AU7, AU20), anger (AU4 alone) or disgust (none of AU9, AU10, AU15, AU16)
READABLE = {"openface": (*EMOTIONS, "neutral"), "pyfeat": (*EMOTIONS, "neutral"), "libreface": (*EMOTIONS, "neutral"),
            "openface3": ("happiness", "sadness", "surprise", "neutral")}


@pytest.mark.parametrize("fmt", sorted(READABLE))
def test_emfacs_prototypes_in_each_format_read_as_their_emotion_with_their_aus_invoked(tmp_path, fmt):
    model, graph = load_default_head()
    table = read_au_table(prototype_table(tmp_path, fmt, READABLE[fmt]))
    assert table.format == fmt
    faces = read_faces(model, graph, table)
    for emotion, face in zip(READABLE[fmt], faces):
        seen = [f"AU{n}" for n in EMFACS_PROTOTYPES.get(emotion, ()) if f"AU{n}" in face.aus
                and face.coded[face.aus.index(f"AU{n}")]]
        assert face.emotion == emotion, (emotion, face.probabilities)
        assert face.probabilities[emotion] > 0.5
        assert set(seen) <= set(face.invoked), (emotion, seen, face.invoked)
        if emotion != "neutral":
            assert seen  # the prototype shows in this format through at least one AU the head reads
    # Δ is the one do(): ŷ_c − ŷ_c^{do(z_k = 0)} through facr.causal
    face = faces[0]
    z = torch.from_numpy(face.z)[None]
    logits = model.head(z)
    for k in range(len(face.aus)):
        expected = (logits - model.head(do(z, k, 0.0)))[0].detach().numpy()
        np.testing.assert_allclose(face.delta[k], expected, atol=1e-5)


def test_a_head_reads_the_aus_a_front_end_does_not_code_as_absent_and_says_so(tmp_path):
    model, graph = load_default_head()
    face = read_faces(model, graph, read_au_table(prototype_table(tmp_path, "openface3", ("happiness",))))[0]
    assert not face.coded[face.aus.index("AU5")] and face.z[face.aus.index("AU5")] == 0.0
    assert face.coded[face.aus.index("AU12")] and face.z[face.aus.index("AU12")] == pytest.approx(0.9)


# ------------------------------------------------------------------ the shipped head
def test_the_shipped_head_is_a_few_kb_for_the_mediapipe_aus_and_reports_its_figures():
    model, graph = load_default_head()
    folder = default_head_path()
    size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
    assert size < 40_000
    assert model.config.frontend == "mediapipe" and graph.name == "emfacs" and model.config.graph == "emfacs"
    assert model.config.aus == [a for a in SEEN_AUS if a in SYNTH_AUS]
    assert model.config.classes == SynthConfig().emotions
    training = json.loads((folder / "training.json").read_text(encoding="utf-8"))
    m = training["metrics"]
    assert m["data"] == "scm" and m["n_samples"] > 1000
    assert m["accuracy"] > 0.8 and m["cf_invariance"] > 0.9 and m["cf_sensitivity_active"] > 0.9


@pytest.mark.slow
def test_the_shipped_head_is_what_its_command_retrains(tmp_path, run_cli):
    argv = shlex.split(REALFACE_COMMAND)[1:]
    assert argv[:2] == ["train", "head"]
    out = tmp_path / "head"
    argv[argv.index("--out") + 1] = str(out)
    code, _, err = run_cli(*argv, "--no-progress")
    assert code == 0, err
    shipped, retrained = (load_file(str(p / "model.safetensors")) for p in (default_head_path(), out))
    assert shipped.keys() == retrained.keys()
    if not all(torch.equal(shipped[k], retrained[k]) for k in shipped):
        # another CPU may sum in another order: then every held-out prediction must still agree
        a, _ = load_head(default_head_path())
        b, _ = load_head(out)
        test = scm_data(a.config.aus, 4000, 1, 40).part("test")
        z = torch.from_numpy(test.z)
        assert torch.equal(a(z).argmax(1), b(z).argmax(1))
    saved = json.loads((default_head_path() / "training.json").read_text(encoding="utf-8"))["config"]
    again = json.loads((out / "training.json").read_text(encoding="utf-8"))["config"]
    assert saved == again


def test_load_head_refuses_a_reordered_or_incomplete_checkpoint(tmp_path):
    copy = tmp_path / "head"
    shutil.copytree(default_head_path(), copy)
    config = json.loads((copy / "config.json").read_text(encoding="utf-8"))
    config["classes"] = config["classes"][::-1]
    (copy / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(CheckpointError, match="differ from the classes the weights were saved with"):
        load_head(copy)
    (copy / "graph.json").unlink()
    with pytest.raises(CheckpointError, match="not a facr AU head: missing graph.json"):
        load_head(copy)


# ------------------------------------------------------------------ training
def test_scm_vectors_use_the_tables_rule_and_the_jitter_keeps_each_au_on_its_side():
    aus = ["AU1", "AU12", "AU43"]
    clean = scm_data(aus, 500, 3, 10, noise=0.0)
    scene = sample_scene(SynthConfig(n=500, seed=3, subjects=10))
    cols = [SYNTH_AUS.index(a) for a in aus]
    np.testing.assert_array_equal(clean.z, intensity_to_z(scene.intensity[:, cols]))
    noisy = scm_data(aus, 500, 3, 10, noise=0.2)
    assert np.array_equal(noisy.z >= 0.5, clean.z >= 0.5) and not np.array_equal(noisy.z, clean.z)
    assert set(clean.split) == {"train", "val", "test"}


def test_the_faithfulness_objective_makes_the_head_follow_g(tmp_path):
    """The same head, data and seed with and without λs, λi: with them, removing an AU that G does not
    link to the labelled class moves that class's logit several times less."""
    runs, leak = {}, {}
    test = scm_data(list(SYNTH_AUS), 4000, 9, 40).part("test")
    for name, loss in (("facr", LossWeights()), ("no-faith", LossWeights(lambda_s=0.0, lambda_i=0.0))):
        cfg = HeadTrainConfig(n=8000, subjects=40, epochs=15, loss=loss, out=str(tmp_path / name))
        runs[name] = train_head(cfg, progress=False).metrics
        model, graph = load_head(tmp_path / name)
        signs = graph_signs(graph, test.aus, test.classes)
        non_parent = signs.numpy()[:, test.labels].T == 0
        leak[name] = float(np.abs(evaluate(model, test, signs).delta_on(test.labels))[non_parent].mean())
    assert leak["facr"] < 0.3 * leak["no-faith"]
    assert runs["facr"]["cf_invariance"] > runs["no-faith"]["cf_invariance"] + 0.03


def test_train_head_on_the_scm_writes_a_head_and_refuses_to_overwrite_unasked(tmp_path, run_cli):
    out = tmp_path / "head"
    args = ("train", "head", "--n", "2000", "--epochs", "3", "--out", out, "--no-progress")
    code, stdout, err = run_cli(*args, "--json")
    assert code == 0, err
    m = json.loads(stdout)
    assert m["data"] == "scm" and m["dropped_aus"] == [] and m["n_samples"] > 0 and m["accuracy"] > 1 / 7
    model, graph = load_head(out)
    assert model.config.aus == list(SYNTH_AUS) and model.config.frontend == "scm" and graph.name == "emfacs"
    code, _, err = run_cli(*args)
    assert code == 2 and err.startswith(f"facr: {out}: already holds a facr au-head output") and err.count("\n") == 1
    code, stdout, _ = run_cli(*args, "--overwrite")
    assert code == 0 and stdout.startswith(f"wrote {out}: an AU head over 7 classes; held-out ")


def test_train_head_with_the_graph_head_is_wired_by_g(tmp_path, run_cli):
    out = tmp_path / "graph-head"
    code, stdout, err = run_cli("train", "head", "--head", "graph", "--n", "2000", "--epochs", "3", "--out", out,
                                "--no-progress", "--json")
    assert code == 0, err
    m = json.loads(stdout)
    assert m["cf_invariance"] == 1.0 and m["accuracy"] > 1 / 7
    model, graph = load_head(out)
    assert model.config.head == "graph"
    assert model.config.edges == {c: dict(graph.parents(c)) for c in model.config.classes if c in graph.classes} | {
        c: {} for c in model.config.classes if c not in graph.classes}
    with pytest.raises(ValueError, match="edges: head graph is wired by G's edges"):
        HeadConfig(aus=["AU6", "AU12"], classes=["neutral", "happiness"], head="graph")


def test_train_head_for_openface_leaves_out_the_aus_the_scm_does_not_draw(tmp_path, run_cli):
    code, stdout, err = run_cli("train", "head", "--frontend", "openface", "--n", "1000", "--epochs", "1",
                                "--out", tmp_path / "h", "--no-progress")
    assert code == 0, err
    assert "left out AU28, AU45: the front end codes them, the benchmark's SCM does not draw them" in stdout
    model, _ = load_head(tmp_path / "h")
    assert model.config.frontend == "openface" and "AU28" not in model.config.aus and "AU23" in model.config.aus


def labelled_openface(path, n_per_class: int, seed: int) -> None:
    """An OpenFace 2.2 table with an emotion column: noisy happiness, sadness and surprise faces."""
    rng = np.random.default_rng(seed)
    numbers = (1, 2, 4, 5, 6, 12, 15, 26)
    lines = [", ".join(["frame", "face_id", "success", *(f"AU{n:02d}_r" for n in numbers),
                        *(f"AU{n:02d}_c" for n in numbers), "emotion"])]
    for i in range(n_per_class * 3):
        emotion = ("Happy", "Sad", "Surprised")[i % 3]
        on = {"Happy": (6, 12), "Sad": (1, 4, 15), "Surprised": (1, 2, 5, 26)}[emotion]
        present = [(n in on) != (rng.random() < 0.05) for n in numbers]
        r = [rng.uniform(1.5, 4.5) if p else rng.uniform(0, 0.6) for p in present]
        lines.append(", ".join([str(i + 1), "0", "1", *(f"{v:.2f}" for v in r), *(str(int(p)) for p in present),
                                emotion]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_train_head_on_a_labelled_table_learns_its_emotions(tmp_path, run_cli):
    folder = tmp_path / "tables"
    folder.mkdir()
    for k in range(3):
        labelled_openface(folder / f"video{k}.csv", 40, k)
    code, stdout, err = run_cli("train", "head", "--data", folder, "--epochs", "40", "--out", tmp_path / "h",
                                "--no-progress", "--json")
    assert code == 0, err
    m = json.loads(stdout)
    assert m["split"] == "test" and m["held_out"] == "by file" and m["files"] == 3 and m["format"] == "openface"
    assert m["n_samples"] == 120  # one of the three files held out whole
    assert m["accuracy"] > 0.9
    model, _ = load_head(tmp_path / "h")
    assert model.config.classes == ["happy", "sad", "surprised"] and model.config.frontend == "openface"
    assert model.config.aus == ["AU1", "AU2", "AU4", "AU5", "AU6", "AU12", "AU15", "AU26"]


@pytest.mark.parametrize("extra, problem", [
    (("--data", "{bad}"), "{bad}: line 2, column 'AU04_r': not a number: 'x'"),
    (("--data", "{unlabelled}"), "{unlabelled}: no label column 'emotion' (pass --label-column)"),
    (("--aus", "AU1,AU99"), "not a FACS main action unit: 'AU99'"),
    (("--graph", "truth", "--data", "{unlabelled}"), "--graph: truth is the SCM's own graph: it needs SCM data"),
    (("--n", "5"), "n must be in [100, 1000000], got 5"),
    (("--graph", "{missing}"), "{missing}"),
])
def test_train_head_refuses_bad_input_in_one_line(tmp_path, run_cli, extra, problem):
    paths = {"bad": tmp_path / "bad.csv", "unlabelled": tmp_path / "unlabelled.csv", "missing": tmp_path / "nope.json"}
    paths["bad"].write_text("frame, success, AU04_r, AU04_c, emotion\n1, 1, x, 1, happy\n", encoding="utf-8")
    paths["unlabelled"].write_text("frame, success, AU04_r, AU04_c\n1, 1, 2.0, 1\n2, 1, 0.0, 0\n", encoding="utf-8")
    argv = [a.format(**paths) for a in extra]
    code, _, err = run_cli("train", "head", *argv, "--epochs", "1", "--out", tmp_path / "h", "--no-progress")
    assert code == 2 and err.startswith("facr: ") and err.count("\n") == 1
    assert problem.format(**paths) in err
    assert not (tmp_path / "h").exists()


def test_evaluate_scores_a_head_by_the_audits_own_code(tmp_path):
    model, graph = load_default_head()
    data = scm_data(model.config.aus, 1500, 5, 15).part("test")
    ev = evaluate(model, data, graph_signs(graph, data.aus, data.classes))
    summary = ev.summarize()
    assert summary["n_samples"] == len(data.labels)
    assert summary["accuracy"] == pytest.approx(float((ev.predicted == data.labels).mean()))
