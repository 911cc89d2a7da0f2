import numpy as np
import pytest
import torch

from facr.data import formats
from facr.data.torch_data import FaceTorchDataset, Task
from facr.explain import maps as M
from facr.models.encoder import EncoderConfig
from facr.models.reasoner import Reasoner, ReasonerConfig, load_reasoner


@pytest.fixture(scope="module")
def plain(reasoner):
    data, run = reasoner
    model, graph = load_reasoner(run / "model")
    recs = [r for r in formats.load("synth", data).records if r.split == "test"][:4]
    ds = FaceTorchDataset(recs, model.config.aus, Task("emotion", model.config.classes), 32)
    return model, graph, ds


def test_gradcam_on_the_last_stage_is_the_class_activation_map_of_the_au_unit(plain):
    # z_k = σ(W_k · GAP(A) + b): ∂s_k/∂A_c = W_kc / (h w) everywhere, so Grad-CAM = ReLU(Σ_c W_kc A_c) / (h w)
    model, _, ds = plain
    x = ds.images(np.arange(len(ds)))
    maps = M.au_maps(model, x, "gradcam").maps
    with torch.no_grad():
        A = model.encoder.trace(model._pixels(x)).layers[-1]
        h, w = A.shape[-2:]
        expected = torch.relu(torch.einsum("kc,bchw->bkhw", model.to_au.weight, A)) / (h * w)
    assert maps.shape == (len(ds), len(model.config.aus), h, w)
    torch.testing.assert_close(maps, expected, atol=1e-6, rtol=1e-4)


def test_cefam_masking_curve_equals_masking_the_channels_by_hand(plain):
    model, _, ds = plain
    x = model._pixels(ds.images(np.arange(2)))
    trace = model.encoder.trace(x)
    layer, b = 0, 1
    orders = torch.tensor([[3, 0, 5], [1, 2, 7]])  # two AUs, three channels each
    fall_s, fall_p = M.channel_masking(model, trace, layer, orders, b)
    with torch.no_grad():
        A = trace.layers[layer][b:b + 1]
        m = A.mean()
        base = model.latent_from_trace(model.encoder.resume(layer, A))
        for k in range(2):
            for j in range(3):
                masked = A.clone()
                masked[:, orders[k, : j + 1]] = m
                lat = model.latent_from_trace(model.encoder.resume(layer, masked))
                assert float(fall_s[k, j]) == pytest.approx(float(base.z_logits[0, k] - lat.z_logits[0, k]), abs=1e-5)
                p0 = torch.softmax(base.head(base.z), -1)[0]
                p = torch.softmax(lat.head(lat.z), -1)[0]
                torch.testing.assert_close(fall_p[k, j], p0 - p, atol=1e-5, rtol=1e-4)


def test_cefam_picks_each_aus_layer_by_association_and_returns_its_map_and_contributions(plain):
    model, _, ds = plain
    x = ds.images(np.arange(3))
    out = M.au_maps(model, x, "cefam")
    B, K, L = 3, len(model.config.aus), model.encoder.n_layers
    assert out.association.shape == (B, K, L) and out.layer.shape == (B, K)
    assert torch.equal(out.layer, out.association.argmax(dim=2))
    assert out.contribution.shape == (B, K, len(model.config.classes))
    assert out.maps.shape[-1] == 32 // 4  # the finest candidate: the first stage's grid
    assert float(out.maps.min()) >= 0
    # contributions: the fall of the class probabilities sums to 0 over the classes (softmax)
    torch.testing.assert_close(out.contribution.sum(dim=2), torch.zeros(B, K), atol=1e-5, rtol=0)
    assert torch.equal(M.contributions(model, x), out.contribution)


def test_random_maps_are_seeded_and_rollout_and_agcm_are_refused_where_they_do_not_apply(plain):
    model, _, ds = plain
    x = ds.images(np.arange(2))
    a, b = M.au_maps(model, x, "random", seed=3).maps, M.au_maps(model, x, "random", seed=3).maps
    assert torch.equal(a, b) and not torch.equal(a, M.au_maps(model, x, "random", seed=4).maps)
    assert M.methods_for(model) == ["gradcam", "cefam", "random"]
    assert "needs a ViT" in M.available(model, "rollout")
    assert "agcm" in M.available(model, "agcm")


def test_gradient_weighted_rollout_on_a_vit_gives_one_patch_map_per_au():
    torch.manual_seed(0)
    cfg = ReasonerConfig(aus=["AU4", "AU12"], classes=["neutral", "happiness"],
                         encoder=EncoderConfig(arch="vit-tiny", image_size=32, patch_size=16))
    model = Reasoner(cfg).eval()
    x = torch.randint(0, 255, (2, 32, 32, 3), dtype=torch.uint8)
    out = M.au_maps(model, x, "rollout")
    assert out.maps.shape == (2, 2, 2, 2) and float(out.maps.min()) >= 0
    # the rollout starts from the identity: a CLS row of zeros over patches would mean no attention flowed
    assert float(out.maps.sum()) > 0
    # a different AU unit gets a different map (gradient-weighted, not the class-agnostic rollout)
    assert not torch.allclose(out.maps[:, 0], out.maps[:, 1])
    # recomputed from transformers' own attention outputs (eager attention returns the softmax weights in
    # the autograd graph), not facr's layer-by-layer trace: R <- R + mean_heads((dz_k/dA * A)+) R from I,
    # the CLS row over the 2 x 2 patches
    model.encoder.backbone.set_attn_implementation("eager")
    hf = model.encoder.backbone(pixel_values=model._pixels(x), output_attentions=True, interpolate_pos_encoding=True)
    s = model.to_au(hf.last_hidden_state[:, 0])
    expected = []
    for k in range(2):
        grads = torch.autograd.grad(s[:, k].sum(), hf.attentions, retain_graph=True)
        R = torch.eye(5).repeat(2, 1, 1)
        for A, G in zip(hf.attentions, grads):
            R = R + (G * A).clamp(min=0).mean(dim=1) @ R
        expected.append(R[:, 0, 1:].reshape(2, 2, 2))
    torch.testing.assert_close(out.maps, torch.stack(expected, dim=1).detach(), atol=1e-6, rtol=1e-4)
    assert M.au_maps(model, x, "gradcam").maps.shape == (2, 2, 2, 2)  # ViT Grad-CAM on the patch tokens
