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


@pytest.mark.parametrize("renderer", S.RENDERERS)
@pytest.mark.parametrize("style", ["a", "b"])
def test_every_au_is_a_visible_change_inside_its_region_mask(style, renderer):
    rng = np.random.default_rng(11)
    for trial in range(4):
        ident = S.random_identity(rng)
        nz = S.Nuisance(angle=rng.uniform(-8, 8), scale=rng.uniform(0.93, 1.07), dx=0.02, dy=-0.01, light=0.2,
                        light_dir=1.0, noise=0.0, bg_hue=0.3)
        base = np.zeros(len(S.SYNTH_AUS))
        if trial == 2:  # other AUs active as well
            base[[0, 5, 12]] = [2, 3, 4]
        if trial == 3:  # the jaw dropped: AU25 opens a mouth AU26 carried down (renderer 2)
            base[S.SYNTH_AUS.index("AU26")] = 4
        for k, a in enumerate(S.SYNTH_AUS):
            off, on = base.copy(), base.copy()
            off[k], on[k] = 0, (1 if a == "AU43" else 5)
            im0, masks = S.render_face(ident, off, nz, style=style, masks=True, renderer=renderer)
            im1 = S.render_face(ident, on, nz, style=style, renderer=renderer)
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


def _mouth_interior(img: np.ndarray) -> int:
    """Pixels of the open mouth's dark interior colour (drawn (0.30, 0.08, 0.10): about (77, 20, 26)); a dark
    lip line can come near it, so figures are compared to the same face with the mouth closed."""
    return int((np.abs(img.astype(int) - (77, 20, 26)).sum(-1) < 25).sum())


@pytest.mark.parametrize("style", ["a", "b"])
def test_renderer_2_parts_the_lips_only_under_au25(style):
    """FACS: lips apart is AU25; AU26 alone drops the jaw with the lips together. Renderer 2 draws that, so
    do(AU25 = 0) under a dropped jaw closes the mouth; renderer 1 left it open (the benchmarks before it)."""
    rng = np.random.default_rng(4)
    nz = S.Nuisance(noise=0.0)
    for _ in range(3):
        ident = S.random_identity(rng)
        closed = _mouth_interior(S.render_face(ident, {}, nz, style=style))
        for renderer in S.RENDERERS:
            jaw = S.render_face(ident, {"AU26": 4}, nz, style=style, renderer=renderer)
            both = S.render_face(ident, {"AU25": 3, "AU26": 4}, nz, style=style, renderer=renderer)
            assert _mouth_interior(both) > closed + 60
            if renderer == 1:
                assert _mouth_interior(jaw) > closed + 60
            else:
                assert _mouth_interior(jaw) <= closed + 3
                # the jaw still drops: AU26 alone is a change of its own, in the lower face
                assert (_diff(jaw, S.render_face(ident, {}, nz, style=style)) > 30).sum() > 200


def test_renderer_2_draws_au14_visibly_at_intensity_1():
    """AU14's dimples at intensity 1 at 112 px: a hairline under renderer 1, a shadow under renderer 2."""
    rng = np.random.default_rng(5)
    nz = S.Nuisance(noise=0.0)
    for _ in range(4):
        ident = S.random_identity(rng)
        changed = {r: int((_diff(S.render_face(ident, {}, nz, renderer=r),
                                 S.render_face(ident, {"AU14": 1}, nz, renderer=r)) > 30).sum())
                   for r in S.RENDERERS}
        assert changed[2] >= 50 and changed[2] > changed[1], changed


def test_the_renderers_differ_only_where_au26_acts_without_au25_or_au14_is_drawn():
    """Pixels: identical unless AU14 is drawn or AU26 without AU25. Regions (where an AU's drawing can change
    at any intensity): identical outside the mouth, whose regions follow the renderer."""
    mouth = [k for k, a in enumerate(S.SYNTH_AUS)
             if a in ("AU10", "AU12", "AU14", "AU15", "AU16", "AU17", "AU20", "AU23", "AU24", "AU25", "AU26")]
    rng = np.random.default_rng(6)
    k14, k25, k26 = (S.SYNTH_AUS.index(a) for a in ("AU14", "AU25", "AU26"))
    same = differ = 0
    for i in range(120):
        ident = S.random_identity(rng)
        inten = np.where(rng.random(len(S.SYNTH_AUS)) < 0.35, rng.integers(1, 6, len(S.SYNTH_AUS)), 0).astype(float)
        nz = S.Nuisance(angle=float(rng.uniform(-8, 8)), noise=3.0, noise_seed=i, light=0.1)
        style, uni = "ab"[i % 2], bool(i % 7 == 0)
        (im1, m1), (im2, m2) = (S.render_face(ident, inten, nz, style=style, unilateral=uni, masks=True, renderer=r)
                                for r in S.RENDERERS)
        rest = np.ones(len(S.SYNTH_AUS), bool)
        rest[mouth] = False
        assert np.array_equal(m1[rest], m2[rest])
        if inten[k14] == 0 and (inten[k26] == 0 or inten[k25] > 0):
            assert np.array_equal(im1, im2), inten
            same += 1
        else:
            differ += int(not np.array_equal(im1, im2))
    assert same > 30 and differ > 30


def test_a_benchmark_is_redrawn_by_the_renderer_that_drew_it(tmp_path):
    """config.json records the renderer; a folder that names none (drawn before renderer versions) is renderer
    1. Either way the scene read back redraws the stored pixels exactly."""
    import datasets

    for renderer in S.RENDERERS:
        out = tmp_path / f"r{renderer}"
        S.write_synth(out, S.SynthConfig(n=40, seed=9, subjects=4, size=64, renderer=renderer), workers=1)
        doc = json.loads((out / "config.json").read_text())
        assert doc["config"]["renderer"] == renderer
        if renderer == 1:  # as written before 2026-12-01
            del doc["config"]["renderer"]
            (out / "config.json").write_text(json.dumps(doc))
        scene = S.read_scene(out)
        assert scene.config.renderer == renderer
        dd = datasets.load_from_disk(str(out))
        stored = np.stack([np.asarray(r["image"]) for sp in ("train", "val", "test") for r in dd[sp]])
        index = np.array([r["index"] for sp in ("train", "val", "test") for r in dd[sp]])
        assert np.array_equal(S.render_intervention(scene, index), stored)
    jaw = scene.intensity[:, S.SYNTH_AUS.index("AU26")] > 0
    assert jaw.any()  # the two renderers differ on these faces, so the check above tells them apart


def test_render_rejects_bad_input():
    ident = S.Identity()
    with pytest.raises(ValueError, match="AU11 is not drawn"):
        S.render_face(ident, {"AU11": 2})
    with pytest.raises(ValueError, match=r"\[0, 5\]"):
        S.render_face(ident, {"AU12": 7})
    with pytest.raises(ValueError, match="multiple of 4"):
        S.render_face(ident, {}, size=110)
    with pytest.raises(ValueError, match="renderer must be one of 1, 2"):
        S.render_face(ident, {}, renderer=3)
    with pytest.raises(ValueError, match="renderer must be one of 1, 2"):
        S.SynthConfig(renderer=0)


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
def test_cli_synth_preview_inspect(tmp_path, run_cli, capsys):
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
    assert summary["renderer"] == 1 and json.loads((out / "config.json").read_text())["config"]["renderer"] == 1
    code, stdout, _ = run_cli("data", "synth", "--out", tmp_path / "r2", "--n", 12, "--subjects", 3, "--renderer", 2,
                              "--json", "--workers", 1)
    assert code == 0 and json.loads(stdout)["renderer"] == 2
    assert S.read_scene(tmp_path / "r2").config.renderer == 2
    with pytest.raises(SystemExit) as stop:  # argparse's own refusal of a choice
        run_cli("data", "synth", "--out", tmp_path / "r3", "--n", 12, "--renderer", 3)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "--renderer" in err and "invalid choice: 3" in err
    assert not (tmp_path / "r3").exists()
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
