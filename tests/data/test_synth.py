"""The known-structure synthetic benchmark: renderer, SCM, true graph, on-disk format, loader, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facr import au as au_vocab
from facr.data import synth as S
from facr.data.formats import detect_format, load
from facr.graph import load_graph
from facr.graph.io import graph_to_dict
from facr.graph.validate import problems

SMALL = dict(n=210, seed=3, subjects=6)


@pytest.fixture(scope="module")
def small_ds(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "ds"
    S.write_synth(out, S.SynthConfig(**SMALL, shortcut=0.9), workers=1)
    return out


# ------------------------------------------------------------------ renderer
def _diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(int) - b.astype(int)).sum(-1)


@pytest.mark.parametrize("style", ["a", "b"])
def test_every_au_is_a_visible_change_inside_its_region_mask(style):
    rng = np.random.default_rng(11)
    for trial in range(3):
        ident = S.random_identity(rng)
        nz = S.Nuisance(angle=rng.uniform(-8, 8), scale=rng.uniform(0.93, 1.07), dx=0.02, dy=-0.01, light=0.2,
                        light_dir=1.0, noise=0.0, bg_hue=0.3)
        base = np.zeros(len(S.SYNTH_AUS))
        if trial == 2:  # other AUs active as well
            base[[0, 5, 12]] = [2, 3, 4]
        for k, a in enumerate(S.SYNTH_AUS):
            off, on = base.copy(), base.copy()
            off[k], on[k] = 0, (1 if a == "AU43" else 5)
            im0, masks = S.render_face(ident, off, nz, style=style, masks=True)
            im1 = S.render_face(ident, on, nz, style=style)
            d = _diff(im0, im1)
            changed = int((d > 30).sum())
            assert changed >= 20, f"{a} at full intensity changes only {changed} pixels"
            region = np.kron(masks[k], np.ones((S.MASK_STRIDE, S.MASK_STRIDE), bool))
            inside = d[region].sum() / d.sum()
            assert inside > 0.999, f"{a}: {1 - inside:.3%} of the change falls outside its mask"
            assert region.mean() < 0.45, f"{a}: mask covers {region.mean():.0%} of the image"


def test_intensity_zero_draws_nothing_and_intensity_grows_the_change():
    ident = S.random_identity(np.random.default_rng(0))
    nz = S.Nuisance(noise=0.0)
    neutral = S.render_face(ident, {}, nz)
    assert np.array_equal(neutral, S.render_face(ident, {"AU12": 0, "AU4": 0}, nz))
    sizes = [_diff(neutral, S.render_face(ident, {"AU12": i}, nz)).sum() for i in (1, 3, 5)]
    assert sizes[0] < sizes[1] < sizes[2]


def test_render_rejects_bad_input():
    ident = S.Identity()
    with pytest.raises(ValueError, match="AU11 is not drawn"):
        S.render_face(ident, {"AU11": 2})
    with pytest.raises(ValueError, match=r"\[0, 5\]"):
        S.render_face(ident, {"AU12": 7})
    with pytest.raises(ValueError, match="multiple of 4"):
        S.render_face(ident, {}, size=110)


# ------------------------------------------------------------------ SCM
def test_same_seed_same_dataset_whatever_the_workers():
    cfg = S.SynthConfig(n=60, seed=5, subjects=4)
    a = S.generate(cfg, workers=1)
    b = S.generate(cfg, workers=2)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.masks, b.masks)
    assert np.array_equal(a.scene.intensity, b.scene.intensity)
    c = S.generate(S.SynthConfig(n=60, seed=6, subjects=4), workers=1)
    assert not np.array_equal(a.scene.intensity, c.scene.intensity)


def test_scm_follows_the_true_graph():
    cfg = S.SynthConfig(n=6000, seed=0)
    scene = S.sample_scene(cfg)
    pres = scene.presence.astype(bool)
    idx = {a: k for k, a in enumerate(S.SYNTH_AUS)}
    graph = S.true_graph(cfg)
    for ci, e in enumerate(cfg.emotions):
        rows = scene.emotion == ci
        for au, sign in graph.parents(e).items():
            rate = pres[rows, idx[au]].mean()
            if sign > 0:
                assert rate >= 0.8, f"prototype {au} of {e} present in only {rate:.2f}"
            else:
                assert rate <= 0.03, f"inhibited {au} of {e} present in {rate:.2f}"
    neutral = scene.emotion == 0
    assert pres[neutral].mean() < 0.15  # base rates: a neutral face shows little
    # PSPI is computed from the rendered intensities
    expected = au_vocab.pspi({a: scene.intensity[:, idx[a]] for a in ("AU4", "AU6", "AU7", "AU9", "AU10", "AU43")})
    assert np.array_equal(scene.pspi, np.asarray(expected))
    # never-in-pain subjects: no pain process and no spontaneous PSPI AUs
    never = np.flatnonzero(scene.never_pain)
    assert len(never) >= 1
    assert np.all(scene.pain_level[np.isin(scene.subject, never)] == 0)
    assert np.all(scene.pspi[np.isin(scene.subject, never) & neutral] == 0)


def test_shortcut_tracks_the_class_in_train_and_is_chance_in_test():
    cfg = S.SynthConfig(n=7000, seed=1, shortcut=0.8)
    scene = S.sample_scene(cfg)
    agrees = scene.cue == scene.shortcut_class
    C = len(cfg.emotions)
    train, test = scene.split == "train", scene.split == "test"
    assert abs(agrees[train].mean() - (0.8 + 0.2 / C)) < 0.02
    assert abs(agrees[test].mean() - 1 / C) < 0.03
    no_cut = S.sample_scene(S.SynthConfig(n=7000, seed=1, shortcut=0.0))
    assert abs((no_cut.cue == no_cut.shortcut_class)[no_cut.split == "train"].mean() - 1 / C) < 0.02


def test_splits_are_subject_disjoint_and_style_changes_pixels_not_labels():
    a = S.generate(S.SynthConfig(n=40, seed=2, subjects=5), workers=1)
    b = S.generate(S.SynthConfig(n=40, seed=2, subjects=5, style="b"), workers=1)
    sa = a.scene
    by_subject = {s: set(sa.split[sa.subject == s]) for s in np.unique(sa.subject)}
    assert all(len(v) == 1 for v in by_subject.values())
    assert set(sa.split) == {"train", "val", "test"}
    assert np.array_equal(sa.intensity, b.scene.intensity) and np.array_equal(sa.emotion, b.scene.emotion)
    assert np.abs(a.images.astype(int) - b.images.astype(int)).mean() > 10


def test_true_graph_is_a_valid_truth_graph():
    g = S.true_graph(S.SynthConfig(contempt=True))
    assert problems(graph_to_dict(g)) == []
    assert set(g.provenance_counts()) == {"truth"}
    assert g.parents("happiness") == {"AU6": 1, "AU12": 1, "AU4": -1, "AU15": -1}
    assert g.parents("neutral") == {}
    assert set(g.parents("pain")) == {"AU4", "AU6", "AU7", "AU9", "AU10", "AU43"}
    assert "contempt" in g.classes
    assert "pain" not in S.true_graph(S.SynthConfig(pain=False)).classes


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="shortcut"):
        S.SynthConfig(shortcut=1.5)
    with pytest.raises(ValueError, match="style"):
        S.SynthConfig(style="c")
    with pytest.raises(ValueError, match="emotion_prior: unknown emotion"):
        S.SynthConfig(emotion_prior={"joy": 1})
    with pytest.raises(ValueError, match=r"unknown config field\(s\): nn "):
        S.SynthConfig.from_dict({"nn": 3})
    with pytest.raises(ValueError, match="size: expected an integer, got 'big'"):
        S.SynthConfig.from_dict({"size": "big"})


# ------------------------------------------------------------------ on disk
def test_written_dataset_loads_with_datasets_and_holds_its_truth(small_ds):
    import datasets

    dd = datasets.load_from_disk(str(small_ds))
    assert set(dd) == {"train", "val", "test"}
    assert sum(len(d) for d in dd.values()) == SMALL["n"]
    row = dd["train"][0]
    assert row["image"].size == (112, 112)
    assert len(row["au_presence"]) == len(S.SYNTH_AUS)
    masks = S.unpack_masks(row["au_masks"], 112)
    assert masks.shape == (len(S.SYNTH_AUS), 28, 28) and masks.any()
    doc = json.loads((small_ds / "config.json").read_text())
    assert doc["aus"] == list(S.SYNTH_AUS) and doc["config"]["seed"] == SMALL["seed"]
    assert load_graph(small_ds / "graph.json") == S.true_graph(S.SynthConfig(**SMALL, shortcut=0.9))
    # images on disk are the generator's, pixel for pixel
    batch = S.generate(S.SynthConfig(**SMALL, shortcut=0.9), workers=1, indices=[row["index"]])
    assert np.array_equal(np.asarray(row["image"]), batch.images[0])
    # and so are the masks: the generator's packed bytes unpacked here with numpy (packbits along the AU axis)
    assert np.array_equal(masks, np.unpackbits(batch.masks[0], axis=0, count=len(S.SYNTH_AUS)).astype(bool))


def test_write_refuses_a_non_empty_folder_and_leaves_nothing_on_failure(tmp_path, monkeypatch):
    from facr.errors import FacrError

    out = tmp_path / "ds"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    for overwrite in (False, True):  # a folder facr did not write is never replaced
        with pytest.raises(FacrError, match="not empty and facr did not write it"):
            S.write_synth(out, S.SynthConfig(n=12, subjects=3), workers=1, overwrite=overwrite)
    assert (out / "keep.txt").read_text() == "mine"
    out = tmp_path / "ds2"  # an earlier synth folder: replaced with overwrite, but only by a whole new one
    S.write_synth(out, S.SynthConfig(n=12, subjects=3), workers=1)
    old = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("facr.graph.save_graph", boom)
    with pytest.raises(OSError, match="disk full"):
        S.write_synth(out, S.SynthConfig(n=12, subjects=3), workers=1, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "ds2"]  # no temp folder left behind
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == old  # the old content is untouched


def test_loader_reads_records_with_images_masks_and_extras(small_ds):
    assert detect_format(small_ds) == "synth"
    result = load("synth", small_ds)
    assert len(result.records) == SMALL["n"] and result.issues == []
    r = result.records[0]
    assert r.image.shape == (112, 112, 3) and r.image.dtype == np.uint8
    assert set(r.au_presence) == set(S.SYNTH_AUS) and r.emotion in S.EMOTIONS
    assert r.pain == int(r.pspi > 0)
    assert S.record_masks(r).shape == (len(S.SYNTH_AUS), 28, 28)
    assert {"cue", "cue_agrees", "pain_level", "index"} <= set(r.meta)
    subjects = {}
    for rec in result.records:
        subjects.setdefault(rec.subject, set()).add(rec.split)
    assert all(len(v) == 1 for v in subjects.values())


def test_preview_grid(small_ds, tmp_path):
    from PIL import Image

    out = S.preview_grid(small_ds, tmp_path / "grid.png", n=10, columns=5)
    with Image.open(out) as im:
        assert im.size == (5 * 224, 2 * (224 + 44))
        arr = np.asarray(im.convert("RGB"))
    assert arr.std() > 20  # faces, not a blank sheet


# ------------------------------------------------------------------ CLI
def test_cli_synth_preview_inspect(tmp_path, run_cli):
    out = tmp_path / "cli-ds"
    code, stdout, _ = run_cli("data", "synth", "--out", out, "--n", 40, "--seed", 1, "--subjects", 4,
                              "--style", "b", "--shortcut", 0.5, "--json", "--workers", 1)
    assert code == 0
    summary = json.loads(stdout)
    assert summary["n"] == 40 and sum(summary["splits"].values()) == 40 and summary["style"] == "b"
    code, stdout, _ = run_cli("data", "inspect", out, "--json")
    assert code == 0
    info = json.loads(stdout)
    assert info["format"] == "synth" and info["n_records"] == 40 and info["n_subjects"] == 4 and info["n_errors"] == 0
    code, stdout, _ = run_cli("data", "preview", out, "--out", tmp_path / "g.png", "--n", 4)
    assert code == 0 and (tmp_path / "g.png").stat().st_size > 1000
    code, _, err = run_cli("data", "synth", "--out", out, "--n", 40)
    assert code == 2 and "already holds a facr synth output" in err and err.count("\n") == 1
    code, _, err = run_cli("data", "synth", "--out", tmp_path / "x", "--n", 40, "--shortcut", 2)
    assert code == 2 and "shortcut" in err
    code, stdout, _ = run_cli("data", "synth", "--out", tmp_path / "neutral", "--n", 12, "--subjects", 3,
                              "--emotion-prior", "neutral=1", "--no-pain", "--json", "--workers", 1)
    assert code == 0 and json.loads(stdout)["emotions"] == {"neutral": 12, "happiness": 0, "sadness": 0,
                                                            "surprise": 0, "fear": 0, "anger": 0, "disgust": 0}
    assert "pain" not in load_graph(tmp_path / "neutral" / "graph.json").classes
    code, _, err = run_cli("data", "synth", "--out", tmp_path / "y", "--emotion-prior", "joy")
    assert code == 2 and "name=weight" in err
    code, _, err = run_cli("data", "preview", tmp_path / "missing", "--out", tmp_path / "g2.png")
    assert code == 2 and "config.json" in err


def test_graph_induce_from_the_benchmark_recovers_its_class_edges(tmp_path, run_cli):
    """The issue's acceptance check: induction on the benchmark finds the true class -> AU edges."""
    data = tmp_path / "bench"
    S.write_synth(data, S.SynthConfig(n=2400, seed=0))
    code, stdout, err = run_cli("graph", "induce", "--data", data, "--out", tmp_path / "ind.json",
                                "--bootstrap", 20, "--json")
    assert code == 0, err
    truth, induced = load_graph(data / "graph.json"), load_graph(tmp_path / "ind.json")
    emotions = [c for c in truth.classes if c != "pain"]
    true_edges = {(a, c, s) for c in emotions for a, s in truth.parents(c).items()}
    found = {(a, c, s) for c in induced.classes for a, s in induced.parents(c).items()}
    tp = len(true_edges & found)
    precision, recall = tp / len(found), tp / len(true_edges)
    assert precision >= 0.9 and recall >= 0.9, (precision, recall, sorted(found - true_edges),
                                                sorted(true_edges - found))
    # the CSV and the data paths share one induction: both arguments at once is an error
    code, _, err = run_cli("graph", "induce", "x.csv", "--data", data, "--out", tmp_path / "y.json")
    assert code == 2 and "not both" in err
