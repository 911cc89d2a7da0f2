"""``head: graph`` (facr.models.heads.GraphHead): each class reads its parents in G and nothing else."""

import json

import pytest
import torch

from facr.audit.metrics import parents_from_signs
from facr.causal import intervention_effects
from facr.config import ConfigError
from facr.models.encoder import EncoderConfig
from facr.models.heads import GraphHead, edge_signs
from facr.models.reasoner import CheckpointError, Reasoner, ReasonerConfig, load_reasoner, save_reasoner

AUS = ["AU4", "AU6", "AU12", "AU15"]
CLASSES = ["neutral", "happiness", "sadness"]
EDGES = {"happiness": {"AU6": 1, "AU12": 1}, "sadness": {"AU4": 1, "AU15": 1, "AU12": -1}}


def graph_model(seed=0, hidden=8):
    torch.manual_seed(seed)
    cfg = ReasonerConfig(aus=AUS, classes=CLASSES, encoder=EncoderConfig(arch="resnet-tiny", image_size=32),
                         head="graph", head_hidden=hidden, edges=EDGES)
    return Reasoner(cfg).eval()


def test_a_class_logit_reads_its_parents_and_nothing_else():
    head = graph_model().head
    with torch.no_grad():  # weights far from their start, so that nothing holds by a small init
        for p in head.parameters():
            p.normal_(0.0, 3.0)
    z = torch.rand(64, len(AUS))
    y = head(z)
    for c, name in enumerate(CLASSES):
        parents = [AUS.index(a) for a in EDGES.get(name, {})]
        others = [k for k in range(len(AUS)) if k not in parents]
        moved = z.clone()
        moved[:, others] = torch.rand(64, len(others))  # any change of a non-parent's z
        assert torch.equal(head(moved)[:, c], y[:, c]), name
        if parents:
            moved = z.clone()
            moved[:, parents] = torch.rand(64, len(parents))
            assert not torch.allclose(head(moved)[:, c], y[:, c]), name
    assert torch.unique(y[:, 0]).numel() == 1  # neutral has no parent: one constant logit

    # so every do(z_k = 0) off G's edges moves nothing, whatever ε: the latent invariance is exactly 1
    eff = intervention_effects(head, z)
    off_edge = torch.from_numpy(edge_signs(EDGES, AUS, CLASSES) == 0)  # [K, C]
    delta = (eff.logits[:, None, :] - eff.cf_logits).detach()  # [B, K, C]
    assert float(delta[:, off_edge].abs().max()) == 0.0
    assert float(delta[:, ~off_edge].abs().min()) > 0.0


def test_a_graph_head_reasoner_round_trips_with_its_edges(tmp_path):
    from facr.graph import builtin_graph

    model = graph_model(seed=1)
    x = torch.randint(0, 255, (3, 32, 32, 3), dtype=torch.uint8)
    path = save_reasoner(model, builtin_graph("emfacs"), tmp_path / "ckpt")
    config = json.loads((path / "config.json").read_text())
    assert config["head"] == "graph" and config["edges"] == EDGES
    loaded, _ = load_reasoner(path)
    torch.testing.assert_close(loaded(x).logits, model(x).logits)
    assert not any("mask" in k for k in loaded.state_dict())  # the wiring lives in config.json only

    # a hand-edited wiring is one line naming the file and the edge
    config["edges"]["happiness"]["AU99"] = 1
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises((CheckpointError, ConfigError), match="AU99"):
        load_reasoner(path)


def test_parents_from_signs_and_edge_signs_are_inverse():
    signs = edge_signs(EDGES, AUS, CLASSES)
    assert signs.tolist() == [[0, 0, 1], [0, 1, 0], [0, 1, -1], [0, 0, 1]]
    assert parents_from_signs(signs, AUS, CLASSES) == {"neutral": {}, **EDGES}


@pytest.mark.parametrize("kwargs, message", [
    ({"head": "graph"}, "edges: head graph is wired by G's edges"),
    ({"head": "mlp", "edges": EDGES}, "only head graph reads them"),
    ({"head": "graph", "edges": {"joy": {"AU6": 1}}}, "class 'joy' is not one of the head's classes"),
    ({"head": "graph", "edges": {"happiness": {"AU9": 1}}}, "AU9 is not in the latent's AUs"),
    ({"head": "graph", "edges": {"happiness": {"AU6": 2}}}, "the sign must be -1 or 1"),
])
def test_bad_wirings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ReasonerConfig(aus=AUS, classes=CLASSES, **kwargs)
    with pytest.raises(ValueError, match="signs must be a"):
        GraphHead([[0, 2]])


def test_the_graph_head_trains_from_the_cli_with_the_training_graphs_edges(reasoner, tmp_path, run_cli):
    from facr.causal import graph_signs
    from facr.graph import builtin_graph

    data, _ = reasoner
    out = tmp_path / "run"
    code, _, err = run_cli("train", "reasoner", "--data", data, "--out", out, "--arch", "resnet-tiny",
                           "--graph", "truth", "--head", "graph", "--epochs", 1, "--batch-size", 32,
                           "--no-progress", "--json")
    assert code == 0, err
    model, graph = load_reasoner(out / "model")
    assert model.config.head == "graph"
    aus, classes = model.config.aus, model.config.classes
    wiring = edge_signs(model.config.edges, aus, classes)
    assert (wiring == graph_signs(graph, aus, classes).numpy()).all()  # wired by the graph it trained on
    assert not (wiring == graph_signs(builtin_graph("emfacs"), aus, classes).numpy()).all()
    code, stdout, err = run_cli("audit", "--model", out, "--data", data, "--json", "--no-oracle")
    assert code == 0, err
    assert json.loads(stdout)["cf_invariance"] == 1.0
