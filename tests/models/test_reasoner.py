import json

import pytest
import torch

from facr.config import ConfigError
from facr.graph import emfacs_graph
from facr.models.encoder import Encoder, EncoderConfig
from facr.models.reasoner import CheckpointError, Reasoner, ReasonerConfig, load_reasoner, save_reasoner


def tiny_config(**kw) -> ReasonerConfig:
    g = emfacs_graph()
    return ReasonerConfig(aus=g.aus, classes=["neutral", *g.classes[:-1]],
                          encoder=EncoderConfig(arch="resnet-tiny", image_size=32), **kw)


# Parameter counts from the published architectures, without the classifier: torchvision's resnet18 has
# 11,689,512 with its 512x1000 fc (513,000), resnet50 25,557,032 with its 2048x1000 fc (2,049,000); DeiT-tiny
# 5,717,416 with its 192x1000 head (193,000) and 197 position embeddings at 224 px (37,824), of which a 64 px
# ViT keeps 17 (3,264).
@pytest.mark.parametrize("arch, dim, n_params", [("resnet-18", 512, 11_689_512 - 513_000),
                                                 ("resnet-50", 2048, 25_557_032 - 2_049_000),
                                                 ("vit-tiny", 192, 5_717_416 - 193_000 - 37_824 + 3_264)])
def test_encoders_built_from_transformers_configs_give_features(arch, dim, n_params):
    torch.manual_seed(0)
    enc = Encoder(EncoderConfig(arch=arch, image_size=64)).eval()
    assert enc.dim == dim
    assert sum(p.numel() for p in enc.parameters()) == n_params  # the architecture named, not another
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        features = enc(x)
        alone = enc(x[1:])
    assert features.shape == (2, dim)
    # one feature vector per image, of that image only: the same alone as in a batch, another for another image
    torch.testing.assert_close(alone[0], features[1], atol=1e-4, rtol=1e-4)
    assert not torch.allclose(features[0], features[1], atol=1e-3)


def test_reasoner_latent_is_a_probability_per_au_and_head_gives_class_logits():
    model = Reasoner(tiny_config())
    out = model(torch.randn(3, 3, 32, 32))
    assert out.z.shape == (3, 17) and out.logits.shape == (3, 8)
    assert bool(((out.z > 0) & (out.z < 1)).all())
    torch.testing.assert_close(out.z, torch.sigmoid(out.z_logits))
    torch.testing.assert_close(out.logits, model.head(out.z))


def test_checkpoint_round_trip_is_exact_and_overwrites_atomically(tmp_path):
    torch.manual_seed(0)
    model, graph = Reasoner(tiny_config()).eval(), emfacs_graph()
    path = save_reasoner(model, graph, tmp_path / "ckpt")
    assert sorted(p.name for p in path.iterdir()) == [".facr-output.json", "config.json", "graph.json",
                                                      "model.safetensors"]
    loaded, g2 = load_reasoner(path)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(loaded(x).logits, model(x).logits)
    assert g2 == graph and loaded.config == model.config
    save_reasoner(Reasoner(tiny_config(head="linear")), graph, path, overwrite=True)
    assert load_reasoner(path)[0].config.head == "linear"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temp folders left


def test_bad_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint folder"):
        load_reasoner(tmp_path / "nope")
    path = save_reasoner(Reasoner(tiny_config()), emfacs_graph(), tmp_path / "ckpt")
    (path / "graph.json").unlink()
    with pytest.raises(CheckpointError, match="missing graph.json"):
        load_reasoner(path)
    path = save_reasoner(Reasoner(tiny_config()), emfacs_graph(), tmp_path / "ckpt2")
    cfg = json.loads((path / "config.json").read_text())
    cfg["head"] = "transformer"
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="head must be one of mlp, linear, graph, agcm"):
        load_reasoner(path)
    cfg["head"] = "mlp"
    cfg["head_hidden"] = 5
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="weights do not fit config.json"):
        load_reasoner(path)


def test_config_rejects_bad_fields_by_name():
    with pytest.raises(ValueError, match="aus"):
        tiny_config().__class__(aus=[], classes=["a", "b"])
    with pytest.raises(ValueError, match="class id 'Happy'"):
        ReasonerConfig(aus=["AU4"], classes=["Happy", "sad"])
    with pytest.raises(ValueError, match="arch must be one of"):
        EncoderConfig(arch="resnet-101")


def test_pretrained_encoder_from_a_local_folder_and_its_checkpoint_reload_offline(tmp_path):
    """from_pretrained(local folder) loads the weights; the saved facr checkpoint rebuilds the same
    network from its own config, without the original folder."""
    import shutil

    from transformers import ResNetConfig, ResNetModel

    from facr.graph import emfacs_graph
    from facr.models.encoder import EncoderConfig
    from facr.models.reasoner import Reasoner, ReasonerConfig, load_reasoner, save_reasoner

    torch.manual_seed(1)
    folder = tmp_path / "my-resnet"
    tiny = ResNetConfig(depths=[1, 1], hidden_sizes=[8, 16], embedding_size=8, layer_type="basic")
    ResNetModel(tiny).save_pretrained(folder)
    ref = ResNetModel.from_pretrained(folder)
    cfg = ReasonerConfig(aus=["AU6", "AU12"], classes=["neutral", "happiness"],
                         encoder=EncoderConfig(arch="resnet-tiny", pretrained=str(folder)))
    model = Reasoner(cfg).eval()
    for name, value in ref.state_dict().items():
        assert torch.equal(model.encoder.backbone.state_dict()[name], value), name
    save_reasoner(model, emfacs_graph(), tmp_path / "ckpt")
    shutil.rmtree(folder)
    again, _ = load_reasoner(tmp_path / "ckpt")
    x = torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8)
    with torch.no_grad():
        assert torch.equal(model(x).logits, again.eval()(x).logits)
