"""Training that grounds z in the face (facr.grounding): each option changes the batch or the loss
the way it claims; the options validate; the grounded recipe trains from the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from facr.data.formats import load
from facr.data.synth import (
    SYNTH_AUS,
    SynthConfig,
    face_masks,
    read_scene,
    render_face,
    render_intervention,
    write_synth,
)
from facr.data.torch_data import FaceTorchDataset, Task
from facr.grounding import (
    GroundingConfig,
    PairMaker,
    build_grounding,
    face_masks_for,
    grounding_loss,
    landmark_face_mask,
)
from facr.losses import au_bce, au_pos_weight

REPO = Path(__file__).resolve().parents[1]
CLASSES = ["neutral", "happiness", "sadness", "surprise", "fear", "anger", "disgust"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("grounded") / "synth"
    write_synth(out, SynthConfig(n=120, seed=0, subjects=6, size=48, shortcut=0.9), workers=1)
    return out


def _train_ds(data: Path, augment: bool = False, rois: bool = False) -> FaceTorchDataset:
    records = [r for r in load("synth", data).records if r.split == "train"]
    return FaceTorchDataset(records, list(SYNTH_AUS), Task("emotion", CLASSES), 48, augment, seed=1, rois=rois)


def test_face_mask_holds_the_face_and_nothing_of_the_background(data):
    scene = read_scene(data)
    idx = np.arange(12)
    face = face_masks(scene, idx)
    changed = (render_intervention(scene, idx) != render_intervention(scene, idx, nuisance="hue")).any(-1)
    assert changed.sum() > 0.3 * changed.size  # the hue change repaints the background...
    assert not (changed & face).any()  # ...and not one pixel the mask calls face
    assert 0.2 < face.mean() < 0.6  # a face, not an empty or a full mask
    # AU26 drops the jaw: the outline of the re-rendered face follows it
    jaw = face_masks(scene, idx, au="AU26", value=5.0)
    assert (jaw.sum(axis=(1, 2)) > face.sum(axis=(1, 2))).all()


def test_background_randomisation_changes_only_pixels_outside_the_face(data):
    plain, ds = _train_ds(data), _train_ds(data)
    face, known = face_masks_for(ds.records, 48, str(data))
    assert known.all()
    ds.randomise_background(face, 1.0)
    idx = np.arange(len(ds))
    a, b = plain.images(idx).numpy(), ds.images(idx).numpy()
    differs = (a != b).any(-1)
    assert not (differs & face).any()
    assert differs[~face].mean() > 0.9  # outside: a new colour almost everywhere
    # the fill is not one colour for all: the background says nothing of the class
    outside_mean = np.array([b[i][~face[i]].mean(0) for i in idx])
    assert outside_mean.std(0).min() > 30
    # share 0.5: about half the images, the same ones in the same epoch, others in the next
    ds.randomise_background(face, 0.5)
    hit = (ds.images(idx).numpy() != a).any(axis=(1, 2, 3))
    assert 0.3 < hit.mean() < 0.7
    assert np.array_equal(hit, (ds.images(idx).numpy() != a).any(axis=(1, 2, 3)))
    ds.set_epoch(1)
    plain.set_epoch(1)
    assert not np.array_equal(hit, (ds.images(idx).numpy() != plain.images(idx).numpy()).any(axis=(1, 2, 3)))


def test_augmented_background_follows_the_flipped_and_shifted_face(data):
    plain, ds = _train_ds(data, augment=True), _train_ds(data, augment=True)
    face, _ = face_masks_for(ds.records, 48, str(data))
    ds.randomise_background(face, 1.0)
    idx = np.arange(len(ds))
    a, b = plain.images(idx).numpy(), ds.images(idx).numpy()
    # the face mask, augmented as the images: where it is True nothing changed
    as_image = torch.from_numpy(face[..., None].repeat(3, -1).astype(np.uint8))
    moved = ds.augment_images(as_image, idx).numpy()[..., 0] > 0
    assert not ((a != b).any(-1) & moved).any()
    assert ((a != b).any(-1) & ~moved).mean() > 0.4


def test_landmark_hull_is_the_face_of_real_images():
    square = [(10, 10), (30, 10), (30, 30), (10, 30), (20, 20)]
    mask = landmark_face_mask(square, (40, 40), 80)  # the 40 px image seen at 80 px
    assert mask[40, 40] and not mask[10, 10] and not mask[70, 40]
    assert abs(mask.sum() - 41 * 41) < 2 * 41 * 2


def _oracle_z(ds: FaceTorchDataset, maker: PairMaker, rows_all: np.ndarray, pairs) -> tuple[np.ndarray, np.ndarray]:
    """z of an oracle that returns the true AU presence of every image it is shown: the batch rows'
    labels, and for each pair the presence of the one rendering of it that matches its pixels."""
    ref = pairs.ref.numpy()
    z_ref = ds.au_targets[rows_all[ref]]
    z_pair = np.empty_like(z_ref)
    for m in range(len(pairs)):
        row = rows_all[ref[m]]
        truth = ds.au_targets[row]
        if pairs.nuisance[m]:
            z_pair[m] = truth  # a nuisance change leaves every AU as it was
            continue
        sidx = maker.index[row]
        found = [k for k in np.flatnonzero(truth) if np.array_equal(
            render_intervention(maker.scene, [sidx], au=ds.aus[k], value=0.0)[0], pairs.images[m].numpy())]
        assert len(found) == 1  # the pair is x with exactly one of its active AUs removed
        z_pair[m] = truth
        z_pair[m, found[0]] = 0.0
    return z_ref, z_pair


def _logits(p: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.where(p > 0.5, 30.0, -30.0), dtype=torch.float32)


def test_cf_pair_loss_is_zero_for_an_oracle_z_and_positive_for_a_hue_reading_z(data):
    ds = _train_ds(data)
    cfg = GroundingConfig(au_pairs=6, nuisance_pairs=4, nuisances=["hue"])
    maker = build_grounding(cfg, ds, str(data), seed=0)
    rows_all = np.arange(16)
    pairs = maker(torch.from_numpy(rows_all), epoch=0, step=0)
    assert len(pairs) == 10 and int(pairs.nuisance.sum()) == 4
    z_ref, z_pair = _oracle_z(ds, maker, rows_all, pairs)
    oracle = grounding_loss(_logits(z_pair), torch.sigmoid(_logits(z_pair)), torch.sigmoid(_logits(z_ref)), pairs, cfg)
    assert float(oracle.total) < 1e-6

    def hue_reader(images: torch.Tensor) -> torch.Tensor:  # every z_k is the background's redness
        corner = images[:, :4, :4].float().mean(dim=(1, 2))
        return ((corner[:, 0] - corner[:, 2]) / 40.0)[:, None].repeat(1, len(SYNTH_AUS))

    batch = ds.__getitems__(rows_all)["pixel_values"]
    ref = hue_reader(batch[pairs.ref])
    cf = hue_reader(pairs.images)
    hue = grounding_loss(cf, torch.sigmoid(cf), torch.sigmoid(ref), pairs, cfg)
    assert float(hue.pair) > 0.05  # removing an AU leaves the hue, so z_k does not drop
    assert float(hue.nuisance) > 0.05  # changing the hue moves z
    assert float(hue.keep) == 0.0  # (the hue is the same in an AU pair: nothing else moves)


def test_identity_change_shows_the_next_training_subject_only(data):
    scene = read_scene(data)
    ds = _train_ds(data)
    maker = PairMaker(GroundingConfig(nuisance_pairs=4, nuisances=["identity"]), ds, str(data))
    pool = maker.subjects
    assert set(pool) == {int(s) for s in scene.subject[maker.index]}
    assert len(pool) < len(scene.identities)  # val / test subjects exist and are not in it
    i = int(maker.index[0])
    s = int(scene.subject[i])
    nxt = int(pool[np.searchsorted(pool, s, side="right") % len(pool)])
    from facr.data.synth.writer import _nuisance_row

    expected = render_face(scene.identities[nxt], scene.intensity[i], _nuisance_row(scene.nuisance[i]),
                           size=48, style=scene.config.style, unilateral=bool(scene.unilateral[i]))
    assert np.array_equal(render_intervention(scene, [i], nuisance="identity", subjects=pool)[0], expected)


def test_occlusion_pairs_hide_one_region_drop_what_it_covers_and_keep_what_it_misses(data):
    ds = _train_ds(data, rois=True)
    cfg = GroundingConfig(occlusion_pairs=5)
    maker = build_grounding(cfg, ds, str(data), seed=0)
    rows_all = np.arange(20)
    pairs = maker(torch.from_numpy(rows_all), epoch=0, step=0)
    assert len(pairs) == 5
    raw = ds.raw_images(rows_all[pairs.ref.numpy()]).numpy()
    for m in range(len(pairs)):
        row = rows_all[int(pairs.ref[m])]
        regions = ds.roi[row]  # [K, 12, 12]
        changed = (raw[m] != pairs.images[m].numpy()).any(-1)
        assert changed.any()
        cells = changed.reshape(12, 4, 12, 4).any(axis=(1, 3))
        dropped = np.flatnonzero(pairs.drop[m].numpy())
        # the pixels that changed lie in one dropped AU's region, which was active
        assert any(not (cells & ~regions[k]).any() and ds.au_targets[row, k] == 1 for k in dropped)
        for k in np.flatnonzero(pairs.keep[m].numpy()):
            assert not (regions[k] & cells).any()  # a kept AU's region is untouched
        assert not (pairs.keep[m] & pairs.drop[m]).any()
        # a label is known where the occlusion hides the AU (target 0) or misses it (as labelled); an AU
        # covered in part has none
        assert torch.equal(pairs.known[m], pairs.keep[m] | pairs.drop[m])
        assert (pairs.targets[m][pairs.drop[m]] == 0).all()
        assert torch.equal(pairs.targets[m][pairs.keep[m]], torch.from_numpy(ds.au_targets[row])[pairs.keep[m]])


def test_pairs_are_a_function_of_seed_epoch_and_step(data):
    ds = _train_ds(data, augment=True)
    maker = build_grounding(GroundingConfig(au_pairs=4, nuisance_pairs=2), ds, str(data), seed=3)
    rows = torch.arange(16)
    a, b, c = maker(rows, 0, 5), maker(rows, 0, 5), maker(rows, 0, 6)
    assert torch.equal(a.images, b.images) and torch.equal(a.drop, b.drop)
    assert not (torch.equal(a.images, c.images) and torch.equal(a.drop, c.drop))


def test_renderer_pairs_refuse_data_without_a_renderer(data):
    from facr.errors import FacrError

    with pytest.raises(FacrError, match="synthetic benchmark"):
        PairMaker(GroundingConfig(au_pairs=2), _train_ds(data), None)


def test_au_balance_weighs_each_aus_positives_by_its_rarity():
    targets = np.array([[1, 0], [0, 0], [0, 1], [0, 1]], dtype=np.float32)  # AU a: 1 of 4, AU b: 2 of 4
    mask = np.ones_like(targets)
    assert au_pos_weight(targets, mask, 0.0) is None
    assert torch.allclose(au_pos_weight(targets, mask, 1.0), torch.tensor([3.0, 1.0]))
    assert torch.allclose(au_pos_weight(targets, mask, 0.5), torch.tensor([3.0 ** 0.5, 1.0]))
    missed = torch.full((4, 2), -2.0)  # every AU called absent
    t, m = torch.from_numpy(targets), torch.from_numpy(mask)
    assert float(au_bce(missed, t, m, au_pos_weight(targets, mask, 1.0))) > float(au_bce(missed, t, m))


@pytest.mark.parametrize("body, message", [
    ("grounding:\n  background: 1.5\n", "grounding.background must be a share in [0, 1], got 1.5"),
    ("grounding:\n  au_pairs: -1\n", "grounding.au_pairs must be >= 0, got -1"),
    ("grounding:\n  au_pair_share: 2\n", "grounding.au_pair_share must be a share in [0, 1], got 2.0"),
    ("grounding:\n  decorrelate: 1\n", "grounding.decorrelate must be a share in [0, 1) (at 1 no face is left for "
                                        "the class terms), got 1.0"),
    ("grounding:\n  nuisances: [weather]\n", "grounding.nuisances must be among hue, identity, pose, light, "
                                              "got 'weather'"),
    ("batch_size: 8\ngrounding:\n  au_pairs: 6\n  nuisance_pairs: 6\n",
     "grounding: 12 pair images per batch is more than batch_size (8)"),
    ("loss:\n  au_balance: -1\n", "loss.au_balance must be >= 0, got -1.0"),
    ("loss:\n  au_intensity: -1\n", "loss.au_intensity must be >= 0, got -1.0"),
    ("loss:\n  au_intensity_gap: 0\n", "loss.au_intensity_gap must be in (0, 10], got 0.0"),
    ("loss:\n  presence_plateau: -2\n", "loss.presence_plateau must be >= 0, got -2.0"),
    ("loss:\n  plateau_width: 0.7\n", "loss.plateau_width must be in (0, 0.5], got 0.7"),
    ("head: agcm\nloss:\n  presence_plateau: 1\n",
     "loss.presence_plateau needs a head that reads z alone (mlp, linear, graph), not agcm"),
    ("lr_schedule: linear\n", "lr_schedule must be 'constant' or 'cosine', got 'linear'"),
])
def test_bad_grounding_config_is_one_line(data, tmp_path, run_cli, body, message):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(body)
    code, _, err = run_cli("train", "reasoner", "--config", cfg, "--data", data, "--out", tmp_path / "r")
    assert code == 2
    assert err.strip().splitlines() == [f"facr: {cfg}: {message}"]


def test_grounded_recipe_trains_one_epoch_from_the_cli(data, tmp_path, run_cli):
    from facr.train import load_train_config

    recipe = REPO / "recipes" / "configs" / "reasoner_synth_grounded.yaml"
    cfg = load_train_config(recipe)
    assert cfg.grounding.background == 1.0 and cfg.loss.detach_z and cfg.lr_schedule == "cosine"
    assert cfg.au_readout == "attention" and cfg.loss.lambda_m > 0  # z_k reads its own supervised map
    assert cfg.grounding.pairs == 0  # measured: the pairs did not earn their cost (README)
    assert cfg.loss.au_intensity == 1.0  # the benchmark codes intensities: z's logits order them
    assert cfg.loss.presence_plateau == 5.0 and cfg.head == "graph"  # the head flat over a present parent's wobble
    out = tmp_path / "run"
    code, stdout, err = run_cli("train", "reasoner", "--config", recipe, "--data", data, "--out", out,
                                "--arch", "resnet-tiny", "--epochs", 1, "--batch-size", 32, "--seed", 3,
                                "--no-progress", "--json")
    assert code == 0, err
    metrics = json.loads(stdout)
    assert metrics["global_step"] == 2  # 80 training images (4 subjects), batches of 32, the last one dropped
    saved = json.loads((out / "config.json").read_text())
    assert saved["grounding"] == json.loads(json.dumps(cfg.grounding.__dict__))
    # every option on, from the flags: the pairs ride through the loop
    code, stdout, err = run_cli("train", "reasoner", "--config", recipe, "--data", data, "--out", tmp_path / "all",
                                "--arch", "resnet-tiny", "--max-steps", 1, "--batch-size", 32, "--au-pairs", 4,
                                "--au-pair-share", 0.5, "--nuisance-pairs", 2, "--occlusion-pairs", 2,
                                "--decorrelate", 0.5, "--no-progress", "--json")
    assert code == 0, err
    assert json.loads(stdout)["global_step"] == 1
    grounding = json.loads((tmp_path / "all" / "config.json").read_text())["grounding"]
    assert (grounding["au_pairs"], grounding["nuisance_pairs"], grounding["occlusion_pairs"]) == (4, 2, 2)
    assert grounding["decorrelate"] == 0.5


def test_cosine_schedule_sets_the_learning_rate_from_the_step(data, tmp_path):
    import math

    from facr.train import load_train_config, train

    over = {"data.path": str(data), "data.image_size": 48, "encoder.arch": "resnet-tiny", "graph": "truth",
            "batch_size": 16, "epochs": 1, "lr": 0.01, "out": str(tmp_path / "r")}
    for schedule, last in (("cosine", 0.01 * 0.5 * (1 + math.cos(math.pi * 4 / 5))), ("constant", 0.01)):
        train(load_train_config(None, {**over, "lr_schedule": schedule}), progress=False, overwrite=True)
        groups = json.loads((tmp_path / "r" / "state" / "position.json").read_text())["param_groups"]
        assert groups[0]["lr"] == pytest.approx(last)  # 5 steps: the last one (step 4 of 5) set it


def test_au_pair_share_removes_the_faces_other_active_aus_too(data):
    ds = _train_ds(data)
    rows_all = np.arange(16)
    single = build_grounding(GroundingConfig(au_pairs=6), ds, str(data))(torch.from_numpy(rows_all), 0, 0)
    assert (single.drop.sum(1) == 1).all()  # x^{do(AU_k = 0)}: one AU per pair
    maker = build_grounding(GroundingConfig(au_pairs=6, au_pair_share=1.0), ds, str(data))
    pairs = maker(torch.from_numpy(rows_all), 0, 0)
    for m in range(len(pairs)):
        row = rows_all[int(pairs.ref[m])]
        active = [ds.aus[k] for k in np.flatnonzero(ds.au_targets[row] > 0.5)]
        assert [ds.aus[k] for k in np.flatnonzero(pairs.drop[m])] == active  # share 1: every active AU goes
        bare = render_intervention(maker.scene, [maker.index[row]], au=[active], value=0.0)[0]
        assert np.array_equal(pairs.images[m].numpy(), bare)
        assert (pairs.targets[m] == 0).all()
        assert torch.equal(pairs.keep[m], ~pairs.drop[m])  # the absent AUs must stay absent


def test_detach_z_keeps_the_class_loss_out_of_the_encoder():
    from facr.models.encoder import EncoderConfig
    from facr.models.reasoner import Reasoner, ReasonerConfig

    torch.manual_seed(0)
    model = Reasoner(ReasonerConfig(aus=["AU1", "AU4", "AU12"], classes=["neutral", "happiness"],
                                    encoder=EncoderConfig(arch="resnet-tiny", image_size=32)))
    x = torch.randint(0, 256, (4, 32, 32, 3), dtype=torch.uint8)
    for detach, encoder_moves in ((False, True), (True, False)):
        model.zero_grad(set_to_none=True)
        out = model(x, effects="batched", detach_z=detach)
        # the class terms: CE and an L_inv-like term on the do(z_k = 0) logits
        (torch.nn.functional.cross_entropy(out.logits, torch.tensor([0, 1, 0, 1]))
         + (out.effects.delta ** 2).mean()).backward()
        grads = [p.grad for p in model.encoder.parameters()]
        assert any(g is not None and g.abs().sum() > 0 for g in grads) == encoder_moves
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.head.parameters())
    z_free = model(x).z
    assert torch.equal(model(x, detach_z=True).z, z_free)  # the same values, only the gradient differs


def test_pair_consistency_pulls_the_pair_to_its_original_and_not_back():
    from facr.grounding import PairBatch

    K = 3
    pairs = PairBatch(images=torch.zeros(2, 8, 8, 3, dtype=torch.uint8), ref=torch.tensor([0, 1]),
                      targets=torch.tensor([[0.0, 1, 0], [1, 1, 0]]), known=torch.ones(2, K, dtype=torch.bool),
                      drop=torch.tensor([[True, False, False], [False] * K]),
                      keep=torch.tensor([[False, True, True], [False] * K]), nuisance=torch.tensor([False, True]))
    z_logits = torch.zeros(2, K, requires_grad=True)
    z_ref = torch.full((2, K), 0.9, requires_grad=True)
    loss = grounding_loss(z_logits, torch.sigmoid(z_logits), z_ref, pairs, GroundingConfig())
    loss.total.backward()
    assert z_ref.grad is None  # the original is the target: a constant z cannot satisfy the pairs from both sides
    assert z_logits.grad.abs().sum() > 0
    assert loss.as_floats()["g_keep"] == pytest.approx(0.16) and loss.as_floats()["g_nuisance"] == pytest.approx(0.16)


def test_render_with_every_au_set_at_once(data):
    scene = read_scene(data)
    idx = np.arange(6)
    # the rows' own intensities redraw the images as written; one AU changed is the single-AU do()
    assert np.array_equal(render_intervention(scene, idx, intensity=scene.intensity[idx]),
                          render_intervention(scene, idx))
    other = scene.intensity[idx].copy()
    other[:, SYNTH_AUS.index("AU12")] = 4.0
    assert np.array_equal(render_intervention(scene, idx, intensity=other),
                          render_intervention(scene, idx, au="AU12", value=4.0))
    assert np.array_equal(face_masks(scene, idx, intensity=other), face_masks(scene, idx, au="AU12", value=4.0))
    with pytest.raises(ValueError, match=r"intensity: expected \[6, 19\]"):
        render_intervention(scene, idx, intensity=other[:, :3])
    with pytest.raises(ValueError, match=r"must be in \[0, 5\]"):
        render_intervention(scene, idx, intensity=other + 5)


def _mean_max_phi(presence: np.ndarray) -> tuple[float, float]:
    """Mean and largest |phi| over the pairs of AUs (the AUs that vary)."""
    x = presence[:, presence.std(0) > 0].astype(float)
    c = np.abs(np.corrcoef(x.T))[np.triu_indices(x.shape[1], 1)]
    return float(c.mean()), float(c.max())


def _class_spread(presence: np.ndarray, labels: np.ndarray) -> float:
    """Mean over AUs of (its highest − its lowest presence rate across classes)."""
    rates = np.stack([presence[labels == c].mean(0) for c in np.unique(labels)])
    return float((rates.max(0) - rates.min(0)).mean())


def test_decorrelated_faces_carry_independent_aus_drawn_as_labelled_and_train_z_only(tmp_path):
    from facr.grounding import redraw_decorrelated

    root = tmp_path / "synth"
    write_synth(root, SynthConfig(n=900, seed=2, subjects=6, size=32), workers=1)
    records = [r for r in load("synth", root).records if r.split == "train"]

    def fresh():
        return FaceTorchDataset(records, list(SYNTH_AUS), Task("emotion", CLASSES), 32, rois=True)

    ds, plain = fresh(), fresh()
    ds.randomise_background(face_masks_for(ds.records, 32, str(root))[0], 1.0)
    scene = redraw_decorrelated(0.5, ds, str(root), seed=7)
    redrawn = ~ds.class_rows
    assert redrawn.sum() == round(0.5 * len(ds))
    # the other faces are untouched
    keep = np.flatnonzero(~redrawn)
    assert torch.equal(ds.raw_images(keep), plain.raw_images(keep))
    assert np.array_equal(ds.au_targets[keep], plain.au_targets[keep])
    # a redrawn face is the renderer's drawing of its new labels, its regions and face mask with it
    rows = np.flatnonzero(redrawn)[:8]
    sidx = [int(ds.records[i].meta["index"]) for i in rows]
    images, masks = render_intervention(scene, sidx, masks=True)
    assert np.array_equal(ds.raw_images(rows).numpy(), images)
    assert np.array_equal(ds.roi[rows], masks)
    assert np.array_equal(ds.face[rows], face_masks(scene, sidx))
    assert np.array_equal(ds.au_targets[rows], (scene.intensity[sidx] > 0).astype(np.float32))
    assert all(ds.records[i].meta["redrawn"] for i in rows)
    # the records say what was drawn: their intensities and stored regions are the new drawing's
    assert [ds.records[i].au_intensity[a] for i in rows for a in SYNTH_AUS] == scene.intensity[sidx].ravel().tolist()
    # the benchmark's AUs co-occur (a class's prototype AUs together) and follow the emotion; the redrawn
    # faces' do neither (300 faces: |phi| of independent AUs is about 0.05 ± 0.04)
    t, r = plain.au_targets, ds.au_targets[redrawn]
    assert _mean_max_phi(t)[0] > 0.12 and _mean_max_phi(t)[1] > 0.5
    assert _mean_max_phi(r)[0] < 0.07 and _mean_max_phi(r)[1] < 0.3
    assert np.allclose(r.mean(0), t.mean(0), atol=0.08)  # each AU at its own rate
    assert _class_spread(t, ds.labels) > 0.5 and _class_spread(r, ds.labels[redrawn]) < 0.3
    # batches say which rows the class terms score; class weights count only those
    batch = ds.__getitems__(np.arange(10))
    assert torch.equal(batch["class_rows"], torch.from_numpy(~redrawn[:10]))
    assert ds.class_counts().sum() == (~redrawn).sum()
    assert "class_rows" not in plain.__getitems__(np.arange(10))
    # the same seed redraws the same faces the same way (a resumed run); another seed others
    again = fresh()
    again.randomise_background(face_masks_for(again.records, 32, str(root))[0], 1.0)
    redraw_decorrelated(0.5, again, str(root), seed=7)
    assert np.array_equal(again.class_rows, ds.class_rows) and np.array_equal(again.au_targets, ds.au_targets)
    other = fresh()
    redraw_decorrelated(0.5, other, str(root), seed=8)
    assert not np.array_equal(other.class_rows, ds.class_rows)


def test_decorrelate_refuses_data_without_a_renderer(data):
    from facr.errors import FacrError
    from facr.grounding import redraw_decorrelated

    with pytest.raises(FacrError, match="grounding.decorrelate redraws faces and needs the synthetic benchmark"):
        redraw_decorrelated(0.5, _train_ds(data), None)


def test_class_terms_skip_the_rows_that_train_z_only():
    from facr.causal import Effects, intervention_effects
    from facr.losses import LossWeights, facr_loss

    torch.manual_seed(0)
    B, K, C = 6, 4, 3
    z_logits = torch.randn(B, K, requires_grad=True)
    z = torch.sigmoid(z_logits)
    head = torch.nn.Linear(K, C)
    effects = intervention_effects(head, z)
    target, au_t = torch.tensor([0, 1, 2, 0, 1, 2]), (torch.rand(B, K) > 0.5).float()
    mask, signs = torch.ones(B, K), torch.tensor([[1, 0, -1], [0, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=torch.float32)
    w = LossWeights(lambda_a=1.0, lambda_s=1.0, lambda_i=1.0)
    rows = torch.tensor([True, False, True, True, False, True])
    part = facr_loss(effects, z, z_logits, target, au_t, mask, signs, w, class_rows=rows)
    keep = rows.nonzero().squeeze(1)
    sub = facr_loss(Effects(effects.logits[keep], effects.cf_logits[keep], 0.0), z[keep], z_logits[keep],
                    target[keep], au_t[keep], mask[keep], signs, w)
    whole = facr_loss(effects, z, z_logits, target, au_t, mask, signs, w)
    # the class terms are those of the kept rows; the AU BCE is every row's
    for term in ("ce", "sens", "inv"):
        assert torch.allclose(getattr(part, term), getattr(sub, term)), term
    assert torch.allclose(part.au_bce, whole.au_bce) and not torch.allclose(part.ce, whole.ce)
    assert torch.equal(facr_loss(effects, z, z_logits, target, au_t, mask, signs, w,
                                 class_rows=torch.ones(B, dtype=torch.bool)).total, whole.total)
    # a batch of z-only rows: no class term, and the head gets no gradient
    none = facr_loss(effects, z, z_logits, target, au_t, mask, signs, w, class_rows=torch.zeros(B, dtype=torch.bool))
    assert float(none.ce) == 0.0 and torch.allclose(none.total, none.au_bce)
    none.total.backward()
    assert head.weight.grad is None and z_logits.grad is not None


def test_a_share_too_small_for_the_data_redraws_nothing(data):
    from facr.grounding import redraw_decorrelated

    ds = _train_ds(data)
    scene = redraw_decorrelated(0.004, ds, str(data))  # 0.004 of 80 faces rounds to none
    assert ds.class_rows is None and "class_rows" not in ds.__getitems__(np.arange(4))
    assert np.array_equal(scene.intensity, read_scene(data).intensity)
