import json

import numpy as np
import pytest
import torch

from facr.causal import do
from facr.data import formats
from facr.data.torch_data import FaceTorchDataset, Task
from facr.errors import FacrError
from facr.explain.truth import region_masks
from facr.models.agcm import map_loss
from facr.models.encoder import EncoderConfig
from facr.models.reasoner import Reasoner, ReasonerConfig, load_reasoner, save_reasoner


def agcm_model(seed=0):
    torch.manual_seed(seed)
    cfg = ReasonerConfig(aus=["AU4", "AU6", "AU12", "AU15"], classes=["neutral", "happiness", "sadness"],
                         encoder=EncoderConfig(arch="resnet-tiny", image_size=32), head="agcm")
    return Reasoner(cfg).eval()


def test_do_on_the_agcm_head_swaps_in_the_inactivated_embedding_with_the_images_embeddings_fixed():
    model = agcm_model()
    x = torch.randint(0, 255, (3, 32, 32, 3), dtype=torch.uint8)
    out = model(x, effects="batched")
    c = model.concepts(model.encoder.feature_grid(model.encoder.trace(model._pixels(x))))
    for k in range(4):
        z = do(out.z, k, 0.0)
        mixed = z.unsqueeze(-1) * c.positive + (1 - z.unsqueeze(-1)) * c.negative
        by_hand = model.head.linear(mixed.flatten(1))
        torch.testing.assert_close(out.effects.cf_logits[:, k], by_hand, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out.logits, model(x).logits, atol=1e-5, rtol=1e-4)
    # the attention is a distribution over the grid per AU
    torch.testing.assert_close(out.attention.sum(dim=(2, 3)), torch.ones(3, 4), atol=1e-5, rtol=0)


def test_an_agcm_checkpoint_round_trips_and_has_no_z_only_head(tmp_path):
    from facr.graph import load_graph

    model = agcm_model()
    g = load_graph("graphs/emfacs.json")
    path = save_reasoner(model, g, tmp_path / "ckpt")
    assert json.loads((path / "config.json").read_text())["head"] == "agcm"
    loaded, _ = load_reasoner(path)
    x = torch.randint(0, 255, (2, 32, 32, 3), dtype=torch.uint8)
    torch.testing.assert_close(loaded(x).logits, model(x).logits)
    with pytest.raises(FacrError, match="head agcm"):
        loaded.latent_head()


def test_map_loss_is_zero_on_the_roi_and_ignores_aus_without_one():
    roi = torch.zeros(1, 2, 8, 8)
    roi[0, 0, 2:4, 2:4] = 1
    roi[0, 1, 6:, :] = 1
    att = roi / roi.sum(dim=(2, 3), keepdim=True)  # attention on a 8×8 grid equal to the (normalised) ROI
    assert float(map_loss(att, roi, torch.ones(1, 2))) == pytest.approx(0.0, abs=1e-6)
    flat = torch.full((1, 2, 8, 8), 1 / 64)
    both = float(map_loss(flat, roi, torch.ones(1, 2)))
    cos0 = 4 / (8 * 2)  # cos(uniform, 2×2 block) = 4 / (sqrt(64)·sqrt(4))
    cos1 = 16 / (8 * 4)
    assert both == pytest.approx(1 - (cos0 + cos1) / 2, abs=1e-6)
    assert float(map_loss(flat, roi, torch.tensor([[1.0, 0.0]]))) == pytest.approx(1 - cos0, abs=1e-6)
    # an ROI larger than the grid is average-pooled to it (AGCM Eq. 1)
    big = torch.nn.functional.interpolate(roi, scale_factor=4, mode="nearest")
    assert float(map_loss(att, big, torch.ones(1, 2))) == pytest.approx(0.0, abs=1e-6)


def test_the_dataset_serves_each_aus_region_flipped_and_shifted_with_its_image(reasoner):
    data, _ = reasoner
    recs = [r for r in formats.load("synth", data).records if r.split == "train"][:16]
    aus = ["AU1", "AU12", "AU45"]  # AU45 is not drawn by the benchmark: no region
    task = Task("emotion", ["neutral", "happiness", "sadness", "surprise", "fear", "anger", "disgust"])
    plain = FaceTorchDataset(recs, aus, task, 32, rois=True)
    aug = FaceTorchDataset(plain.records, aus, plain.task, 32, augment=True, seed=0, rois=True)
    idx = np.arange(len(plain))
    masks, defined = region_masks(plain.records[0], aus, 32)
    assert defined.tolist() == [True, True, False]
    assert torch.equal(plain.rois([0])[0], torch.from_numpy(masks))
    batch = aug.__getitems__(idx)
    assert batch["roi"].shape == (len(idx), 3, 8, 8) and batch["roi_mask"][:, 2].sum() == 0
    flip, dy, dx = aug.augmentation(idx)
    assert flip.any() and (~flip).any()
    # at 32 px the shift is ±1 pixel, under half a 4-pixel mask cell: the region only flips
    for i in idx:
        want = plain.rois([i])[0]
        assert torch.equal(batch["roi"][i], want.flip(-1) if flip[i] else want)
