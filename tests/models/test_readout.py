"""``au_readout: attention`` (facr.models.readout): z_k reads the encoder through its own spatial map."""

import json

import pytest
import torch

from facr.models.encoder import EncoderConfig
from facr.models.readout import AttentionReadout
from facr.models.reasoner import Reasoner, ReasonerConfig, load_reasoner, save_reasoner

AUS = ["AU4", "AU6", "AU12", "AU15"]
CLASSES = ["neutral", "happiness", "sadness"]


def attention_model(seed=0, head="mlp"):
    torch.manual_seed(seed)
    cfg = ReasonerConfig(aus=AUS, classes=CLASSES, encoder=EncoderConfig(arch="resnet-tiny", image_size=32),
                         head=head, au_readout="attention")
    return Reasoner(cfg).eval()


def test_z_k_reads_only_the_features_its_map_attends_to():
    readout = AttentionReadout(dim=3, n_aus=2)
    with torch.no_grad():
        readout.attend.weight.zero_()
        readout.attend.bias.zero_()
        readout.attend.weight[0, 0] = 1.0  # AU 0 attends where channel 0 is high
        readout.attend.weight[1, 1] = 1.0  # AU 1 where channel 1 is
    grid = torch.zeros(1, 3, 4, 4)
    grid[0, 0, 0, 0] = 60.0  # channel 0 lights up at (0, 0) only
    grid[0, 1, 3, 3] = 60.0  # channel 1 at (3, 3) only
    grid[0, 2] = torch.randn(4, 4)
    with torch.no_grad():
        z, att = readout(grid)
    assert att.shape == (1, 2, 4, 4)
    torch.testing.assert_close(att.sum(dim=(2, 3)), torch.ones(1, 2))
    assert float(att[0, 0, 0, 0]) > 0.999 and float(att[0, 1, 3, 3]) > 0.999
    # change every feature AU 0 does not attend to (channel 2 away from (0, 0)): z_0 stays, z_1 moves
    moved = grid.clone()
    moved[0, 2, 1:, :] = torch.randn(3, 4) * 10
    with torch.no_grad():
        z2, _ = readout(moved)
    assert float((z2[0, 0] - z[0, 0]).abs()) < 1e-6
    assert float((z2[0, 1] - z[0, 1]).abs()) > 1e-3
    # z_k is w_k · Σ_p â_k(p) F(p) + b_k, by hand
    feats = torch.einsum("kp,dp->kd", att[0].flatten(1), grid[0].flatten(1))
    torch.testing.assert_close(z[0], (feats * readout.weight).sum(-1) + readout.bias)


def test_an_attention_readout_reasoner_is_z_only_and_round_trips(tmp_path):
    from facr.graph import load_graph

    model = attention_model()
    assert model.z_only
    x = torch.randint(0, 255, (3, 32, 32, 3), dtype=torch.uint8)
    out = model(x, effects="batched")
    assert out.attention.shape[:2] == (3, len(AUS))
    torch.testing.assert_close(out.attention.sum(dim=(2, 3)), torch.ones(3, len(AUS)), atol=1e-5, rtol=0)
    # the head reads z alone: a stored z is intervened on without the image
    torch.testing.assert_close(model.latent_head()(out.z), out.logits)
    trace = model.encoder.trace(model._pixels(x))
    torch.testing.assert_close(model.latent_from_trace(trace).z_logits, out.z_logits)
    path = save_reasoner(model, load_graph("graphs/emfacs.json"), tmp_path / "ckpt")
    assert json.loads((path / "config.json").read_text())["au_readout"] == "attention"
    loaded, _ = load_reasoner(path)
    torch.testing.assert_close(loaded(x).logits, model(x).logits)
    torch.testing.assert_close(loaded(x).attention, out.attention)


def test_a_pool_checkpoint_keeps_its_keys_and_reads_as_before():
    torch.manual_seed(0)
    cfg = ReasonerConfig(aus=AUS, classes=CLASSES, encoder=EncoderConfig(arch="resnet-tiny", image_size=32))
    assert cfg.au_readout == "pool"
    model = Reasoner(cfg)
    assert isinstance(model.to_au, torch.nn.Linear)
    assert {k for k in model.state_dict() if k.startswith("to_au")} == {"to_au.weight", "to_au.bias"}
    assert model(torch.zeros(1, 32, 32, 3, dtype=torch.uint8)).attention is None


def test_bad_readouts_are_refused():
    with pytest.raises(ValueError, match="au_readout must be one of pool, attention"):
        ReasonerConfig(aus=AUS, classes=CLASSES, au_readout="max")
    with pytest.raises(ValueError, match="needs a z-only head"):
        ReasonerConfig(aus=AUS, classes=CLASSES, head="agcm", au_readout="attention")


def test_the_readout_trains_from_the_cli_with_its_map_supervised_and_shows_its_own_maps(reasoner, tmp_path,
                                                                                         run_cli):
    data, _ = reasoner
    out = tmp_path / "run"
    code, stdout, err = run_cli("train", "reasoner", "--data", data, "--out", out, "--arch", "resnet-tiny",
                                "--graph", "truth", "--au-readout", "attention", "--epochs", 1,
                                "--batch-size", 32, "--no-progress", "--json")
    assert code == 0, err
    assert json.loads((out / "config.json").read_text())["au_readout"] == "attention"
    code, stdout, err = run_cli("audit", "--model", out, "--data", data, "--maps", "--json", "--no-oracle")
    assert code == 0, err
    maps = json.loads(stdout)["maps"]
    assert maps["primary"] == "attention" and "attention" in maps["methods"] and "agcm" not in maps["methods"]
    code, _, err = run_cli("train", "reasoner", "--data", data, "--out", tmp_path / "bad", "--arch", "resnet-tiny",
                           "--au-readout", "max", "--epochs", 1)
    assert code == 2 and "au_readout" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()


def test_the_map_loss_reaches_the_readouts_attention(reasoner):
    """With λm > 0 the readout's attention is supervised by the AU regions (AGCM's map loss)."""
    from facr.causal import Effects
    from facr.data import formats
    from facr.data.torch_data import FaceTorchDataset, Task
    from facr.losses import LossWeights, facr_loss

    data, _ = reasoner
    recs = [r for r in formats.load("synth", data).records if r.split == "train"][:8]
    ds = FaceTorchDataset(recs, AUS, Task("emotion", CLASSES), 32, rois=True)
    idx = list(range(len(ds)))
    roi, roi_mask = ds.rois(idx), torch.from_numpy(ds.roi_mask[idx])
    assert roi_mask.sum() > 0
    model = attention_model()
    out = model(ds.images(idx))
    eff = Effects(out.logits, out.logits.unsqueeze(1), 0.0)
    args = (eff, out.z, out.z_logits, torch.zeros(len(ds), dtype=torch.long), torch.zeros(len(ds), len(AUS)),
            torch.ones(len(ds), len(AUS)), torch.zeros(len(AUS), len(CLASSES)), LossWeights(lambda_m=1.0))
    with_map = facr_loss(*args, attention=out.attention, roi=roi, roi_mask=roi_mask)
    assert with_map.maps is not None and 0 < float(with_map.maps.detach()) < 1
    model.zero_grad()
    with_map.maps.backward()
    assert float(model.to_au.attend.weight.grad.abs().sum()) > 0
