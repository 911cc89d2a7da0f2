"""Each input issue 23 found giving a traceback, replayed through ``facr``: exit 2 and exactly one
line ``facr: <file or flag>: <problem>`` on stderr, never a traceback (and, for checkpoints, never a
model that loads with the wrong labels or NaN weights)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from facr.config import ConfigError, from_dict
from facr.data.synth import SynthConfig, write_synth
from facr.errors import GraphFormatError
from facr.graph import builtin_graph, load_graph
from facr.models.encoder import EncoderConfig
from facr.models.reasoner import CheckpointError, Reasoner, ReasonerConfig, load_reasoner, save_reasoner

DEEP = "[" * 100_000  # the C JSON parser recurses once per bracket: RecursionError before the refusal


def refused(code: int, err: str, *needles: str) -> None:
    """Exit 2, one stderr line starting ``facr: ``, holding every needle, no traceback."""
    assert code == 2, err
    assert err.startswith("facr: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, (needle, err)


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("refusals") / "synth"
    write_synth(root, SynthConfig(n=30, seed=0, subjects=3, size=32), workers=1)
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny untrained reasoner checkpoint (its weights do not matter to a refusal)."""
    torch.manual_seed(0)
    cfg = ReasonerConfig(aus=["AU4", "AU6", "AU12"], classes=["neutral", "happiness", "sadness"],
                         encoder=EncoderConfig(arch="resnet-tiny", image_size=32))
    return save_reasoner(Reasoner(cfg), builtin_graph("emfacs"), tmp_path_factory.mktemp("ckpt") / "model")


@pytest.fixture
def face(tmp_path) -> Path:
    path = tmp_path / "face.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(path)
    return path


def _copy(checkpoint: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "ckpt"
    shutil.copytree(checkpoint, dst)
    return dst


def _edit_config(ckpt: Path, **changes) -> None:
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg.update(changes)
    (ckpt / "config.json").write_text(json.dumps(cfg))


def _rewrite_weights(ckpt: Path, edit=None, metadata: dict | None = None) -> None:
    with safe_open(str(ckpt / "model.safetensors"), "pt") as f:
        meta = f.metadata()
        state = {k: f.get_tensor(k) for k in f.keys()}
    if edit is not None:
        edit(state)
    save_file(state, str(ckpt / "model.safetensors"), metadata=meta if metadata is None else metadata)


def _explain(run_cli, ckpt: Path, face: Path, out: Path):
    return run_cli("explain", "maps", "--model", ckpt, "--image", face, "--crop", "--out", out)


# ------------------------------------------------------------------ deeply nested JSON
def test_deeply_nested_graph_file_is_one_line(tmp_path, run_cli):
    bad = tmp_path / "deep.json"
    bad.write_text(DEEP)
    code, _, err = run_cli("graph", "validate", bad)
    refused(code, err, str(bad), "nested deeper than 64 levels")


def test_graph_nested_within_the_parser_limit_but_past_facr_depth_is_refused(tmp_path):
    """900 levels parse (the C parser allows ~1000) but would overflow whatever walks ``meta`` next."""
    from facr.graph.io import graph_to_dict

    doc = graph_to_dict(builtin_graph("pspi"))
    doc["meta"]["deep"] = json.loads("[" * 900 + "]" * 900)
    bad = tmp_path / "deep_meta.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(GraphFormatError, match="nested deeper than 64 levels"):
        load_graph(bad)


def test_graph_loader_refuses_a_deep_upload_so_the_chat_does_too(tmp_path):
    """The chat reads an uploaded graph through resolve_graph → load_graph: the one loader's refusal."""
    from facr.graph import resolve_graph

    bad = tmp_path / "upload.json"
    bad.write_text(DEEP)
    with pytest.raises(GraphFormatError, match="nested deeper"):
        resolve_graph(str(bad))


def test_oversized_graph_file_is_refused_before_it_is_read(tmp_path, monkeypatch, run_cli, repo):
    import facr.graph.io as gio

    monkeypatch.setattr(gio, "MAX_GRAPH_BYTES", 1000)
    code, _, err = run_cli("graph", "validate", repo / "graphs" / "emfacs.json")
    refused(code, err, "emfacs.json", "more than a facr-graph file may hold (1,000)")


def test_deeply_nested_generations_line_is_one_line(tmp_path, run_cli):
    gen = tmp_path / "g.jsonl"
    gen.write_text(json.dumps({"image": "a.png", "output": "AU4"}) + "\n" + DEEP + "\n")
    code, _, err = run_cli("audit", "--model", "emola", "--generations", gen)
    refused(code, err, f"{gen}:2:", "nested deeper")


def test_generations_text_with_a_line_separator_character_stays_one_line(tmp_path):
    """U+2028 is written unescaped (ensure_ascii=False); it must not cut the JSON line in two."""
    from facr.external.generations import read_generations, write_generations

    gen = tmp_path / "g.jsonl"
    write_generations(gen, [{"image": "a.png", "output": "AU4\u2028AU12", "emotion": "happiness"}])
    rows = read_generations(gen)
    assert len(rows) == 1 and rows[0].output == "AU4\u2028AU12"


# ------------------------------------------------------------------ induction table
def test_binary_bytes_in_an_induction_table_are_one_line(tmp_path, run_cli):
    table = tmp_path / "x.csv"
    table.write_bytes(b"AU4,AU12,label\n1,0,happiness\n\xff\xfe\x00\x81,1,sadness\n")
    code, _, err = run_cli("graph", "induce", table, "--label-column", "label", "--out", tmp_path / "g.json")
    refused(code, err, str(table), "not UTF-8 text (byte 0xff")
    assert not (tmp_path / "g.json").exists()


# ------------------------------------------------------------------ checkpoints
def test_checkpoint_with_nan_weights_is_refused_naming_the_tensor(checkpoint, face, tmp_path, run_cli):
    ckpt = _copy(checkpoint, tmp_path)

    def poison(state):
        state["head.3.weight"].view(-1)[3] = float("nan")

    _rewrite_weights(ckpt, poison)
    code, _, err = _explain(run_cli, ckpt, face, tmp_path / "o.png")
    refused(code, err, str(ckpt / "model.safetensors"), "head.3.weight has 1 NaN or infinite value(s)")


def test_checkpoint_with_infinite_weights_is_refused(checkpoint, tmp_path):
    ckpt = _copy(checkpoint, tmp_path)
    _rewrite_weights(ckpt, lambda s: s["to_au.bias"].fill_(float("-inf")))
    with pytest.raises(CheckpointError, match="to_au.bias has 3 NaN or infinite"):
        load_reasoner(ckpt)


def test_huge_head_hidden_in_a_checkpoint_is_refused_before_allocating(checkpoint, face, tmp_path, run_cli):
    ckpt = _copy(checkpoint, tmp_path)
    _edit_config(ckpt, head_hidden=3_000_000_000)
    code, _, err = _explain(run_cli, ckpt, face, tmp_path / "o.png")
    refused(code, err, str(ckpt / "config.json"), "head_hidden must be in [1, 65536], got 3000000000")


def test_backbone_config_beyond_the_parameter_budget_is_refused(checkpoint, tmp_path):
    """Widths inside the transformers config are bounded by counting the network on the meta device."""
    ckpt = _copy(checkpoint, tmp_path)
    _edit_config(ckpt, encoder={"arch": "resnet-tiny", "image_size": 32,
                                "backbone_config": {"hidden_sizes": [100_000, 100_000], "depths": [4, 4]}})
    with pytest.raises(CheckpointError, match=r"describes a network of [\d,]+ parameters, more than facr loads"):
        load_reasoner(ckpt)
    _edit_config(ckpt, encoder={"arch": "resnet-tiny", "image_size": 32, "backbone_config": {"hidden_sizes": [-5, 3]}})
    with pytest.raises(CheckpointError, match="backbone_config does not build a resnet-tiny network"):
        load_reasoner(ckpt)


def test_reordered_classes_in_a_checkpoint_are_refused(checkpoint, face, tmp_path, run_cli):
    ckpt = _copy(checkpoint, tmp_path)
    _edit_config(ckpt, classes=["happiness", "neutral", "sadness"])  # same shapes: would relabel silently
    code, _, err = _explain(run_cli, ckpt, face, tmp_path / "o.png")
    refused(code, err, str(ckpt / "config.json"), "['happiness', 'neutral', 'sadness']",
            "saved with ['neutral', 'happiness', 'sadness']")


def test_reordered_aus_in_a_checkpoint_are_refused(checkpoint, tmp_path):
    ckpt = _copy(checkpoint, tmp_path)
    _edit_config(ckpt, aus=["AU12", "AU6", "AU4"])
    with pytest.raises(CheckpointError, match="aus .* differ from the aus the weights were saved with"):
        load_reasoner(ckpt)


def test_old_checkpoint_without_the_order_still_loads_and_a_class_too_many_misfits_the_head(checkpoint, tmp_path):
    ckpt = _copy(checkpoint, tmp_path)
    _rewrite_weights(ckpt, metadata={"format": "pt", "facr": "reasoner"})  # as written before the order was saved
    model, _ = load_reasoner(ckpt)
    assert model.config.classes == ["neutral", "happiness", "sadness"]
    _edit_config(ckpt, classes=["neutral", "happiness", "sadness", "fear"])
    misshapen = r"2 misshapen tensors, e.g. head.3.bias is \[3\] in the file, \[4\] by config"
    with pytest.raises(CheckpointError, match=misshapen):
        load_reasoner(ckpt)


def test_wrong_type_in_a_checkpoint_config_names_the_field(checkpoint, tmp_path):
    ckpt = _copy(checkpoint, tmp_path)
    _edit_config(ckpt, head_hidden="64")
    with pytest.raises(ConfigError, match="head_hidden: expected an integer, got '64'"):
        load_reasoner(ckpt)
    (ckpt / "config.json").write_text(DEEP)
    with pytest.raises(CheckpointError, match="nested deeper"):
        load_reasoner(ckpt)


# ------------------------------------------------------------------ config types (YAML, overrides, config.json)
@pytest.mark.parametrize("yaml_text, message", [
    ('data: {image_size: "big"}', "data.image_size: expected an integer, got 'big'"),
    ("epochs: 1.5", "epochs: expected an integer, got 1.5"),
    ("data: 5", "data: expected a mapping, got 5"),
    ("epochs: true", "epochs: expected an integer, got true"),
    ('lr: "fast"', "lr: expected a number, got 'fast'"),
    ("lr: .nan", "lr: expected a finite number"),
    ("head_hidden: 3000000000", "head_hidden must be in [1, 65536]"),
    ("data: {image_size: 40000}", "data.image_size must be in [16, 1024], got 40000"),
    ("seed: -1", "seed must be in [0, 4294967295], got -1"),
])
def test_wrong_type_or_range_in_a_training_yaml_is_one_line(yaml_text, message, tmp_path, run_cli):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml_text + "\n")
    code, _, err = run_cli("train", "reasoner", "--config", cfg, "--out", tmp_path / "run")
    refused(code, err, str(cfg), message)
    assert not (tmp_path / "run").exists()


def _alias_bomb() -> str:
    """Nine levels of ten aliases each: a few hundred bytes that expand to 10⁹ values."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("content, message", [
    (b"\x00abc", "not valid YAML (unacceptable character #x0000"),
    (b"\xff\xfe epochs: 2", "not UTF-8 text"),
    (("a: " + "[" * 5000).encode(), "nested deeper than 64 levels"),
    (("a: " + "[" * 100 + "]" * 100).encode(), "nested deeper than 64 levels"),
    (_alias_bomb().encode(), "holds more than 100,000 values"),
])
def test_hostile_yaml_files_are_one_line(content, message, tmp_path, run_cli):
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(content)
    code, _, err = run_cli("train", "reasoner", "--config", cfg, "--out", tmp_path / "run")
    refused(code, err, str(cfg), message)


def test_yaml_reads_1e_minus_3_as_a_string_and_a_float_field_still_takes_it():
    from facr.train import TrainConfig

    cfg = from_dict(TrainConfig, {"lr": "1e-3", "data": {"loso_subject": 12}})
    assert cfg.lr == 0.001 and isinstance(cfg.lr, float)
    assert cfg.data.loso_subject == "12"  # a numeric subject id, as YAML reads it unquoted


def test_types_are_checked_through_unions_lists_tuples_and_dicts():
    from facr.audit.experiment import ExperimentSpec
    from facr.verbalizer.train import VerbalizerTrainConfig

    base = {"name": "x", "train_config": None, "arms": [{"name": "a"}], "data": {"path": "d"}, "metrics": ["accuracy"]}
    cases = [
        (VerbalizerTrainConfig, {"verbalizer": {"beta": "hot"}},
         "verbalizer.beta: expected a number or null, got 'hot'"),
        (VerbalizerTrainConfig, {"limit": True}, "limit: expected an integer or null, got true"),
        (VerbalizerTrainConfig, {"verbalizer": {"aus": "AU4"}}, "verbalizer.aus: expected a list, got 'AU4'"),
        (VerbalizerTrainConfig, {"verbalizer": {"prompt_hidden": 10**9}},
         "verbalizer.prompt_hidden must be in [1, 4096]"),
        (ExperimentSpec, {**base, "seeds": [0, "one"]}, "seeds[1]: expected an integer, got 'one'"),
        (ExperimentSpec, {**base, "arms": [{"name": 3.5}]}, "arms[0].name: expected a string, got 3.5"),
        (ExperimentSpec, {**base, "paper": {"facr": {"acc": "high"}}},
         "paper.facr.acc: expected a number, got 'high'"),
        (ExperimentSpec, {**base, "comparisons": [["a", 1.5]]}, "comparisons[0][1]: expected a string, got 1.5"),
        (ExperimentSpec, {"name": "x", "arms": []}, "missing config field(s): train_config, data, metrics"),
        (ExperimentSpec, {**base, "audit": {"data": {"format": "synth"}}}, "missing config field(s): audit.data.path"),
        (ExperimentSpec, {**base, "audit": {"data": 7}}, "audit.data: expected a mapping or null, got 7"),
    ]
    for cls, data, message in cases:
        with pytest.raises(ConfigError) as info:
            from_dict(cls, data, "x.yaml")
        assert str(info.value).startswith("x.yaml: ") and message in str(info.value), str(info.value)
    assert from_dict(ExperimentSpec, {**base, "paper": {"facr": {"acc": 1}}}).paper == {"facr": {"acc": 1.0}}
    with pytest.raises(ValueError, match=r"split_fractions: expected a list of 3 items, got 2"):
        SynthConfig.from_dict({"split_fractions": [0.5, 0.5]})
    assert SynthConfig.from_dict({"split_fractions": [0.6, 0.2, 0.2]}).split_fractions == (0.6, 0.2, 0.2)


def test_wrong_type_in_an_experiment_file_is_one_line(tmp_path, run_cli):
    spec = tmp_path / "e.yaml"
    spec.write_text("name: x\ntrain_config: null\narms: [{name: a}]\ndata: {path: d}\nmetrics: [accuracy]\n"
                    "seeds: [0, one]\n")
    code, _, err = run_cli("experiment", "run", spec)
    refused(code, err, str(spec), "seeds[1]: expected an integer, got 'one'")


def test_wrong_type_in_a_verbalizer_yaml_is_one_line(tmp_path, run_cli):
    cfg = tmp_path / "v.yaml"
    cfg.write_text("verbalizer: {n_prompt: many}\n")
    code, _, err = run_cli("train", "verbalizer", "--config", cfg, "--out", tmp_path / "v")
    refused(code, err, str(cfg), "verbalizer.n_prompt: expected an integer, got 'many'")


# ------------------------------------------------------------------ --out naming a folder
def _out_commands(tmp_path: Path, synth: Path, checkpoint: Path, face: Path, out: Path) -> dict[str, list]:
    table = tmp_path / "t.csv"
    table.write_text("AU4,AU12,label\n" + "".join(f"{i % 2},{(i + 1) % 2},{'happiness' if i % 2 else 'sadness'}\n"
                                                  for i in range(40)))
    return {
        "explain maps": ["explain", "maps", "--model", checkpoint, "--image", face, "--crop", "--out", out],
        "graph induce": ["graph", "induce", table, "--label-column", "label", "--bootstrap", "2", "--out", out],
        "data preview": ["data", "preview", synth, "--n", "4", "--out", out],
        "graph export": ["graph", "export", "emfacs", "--out", out],
        "emola stand-in": ["emola", "stand-in", "--data", synth, "--split", "all", "--out", out],
        "graph permute": ["graph", "permute", "emfacs", "--seed", "1", "--out", out],
        "graph draw": ["graph", "draw", "emfacs", "--out", out],
    }


ONE_FILE = ["explain maps", "graph induce", "data preview", "graph export", "emola stand-in", "graph permute",
            "graph draw"]


@pytest.mark.parametrize("command", ONE_FILE)
def test_out_naming_a_folder_is_refused_and_the_folder_kept(command, synth, checkpoint, face, tmp_path, run_cli):
    out = tmp_path / "results"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    argv = _out_commands(tmp_path, synth, checkpoint, face, out)[command]
    code, _, err = run_cli(*argv)
    refused(code, err, f"facr: {out}: is a directory, expected a file path")
    assert [p.name for p in out.iterdir()] == ["mine.txt"] and (out / "mine.txt").read_text() == "keep me"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".results")]  # no temp file left beside it


@pytest.mark.parametrize("command", ONE_FILE)
def test_a_file_at_out_is_replaced_only_with_overwrite(command, synth, checkpoint, face, tmp_path, run_cli):
    out = tmp_path / ("mine.png" if command in ("explain maps", "data preview", "graph draw") else "mine.json")
    out.write_bytes(b"a file of mine")
    argv = _out_commands(tmp_path, synth, checkpoint, face, out)[command]
    code, _, err = run_cli(*argv)
    refused(code, err, f"facr: {out}: already exists; pass --overwrite to replace it")
    assert out.read_bytes() == b"a file of mine"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".mine")]  # no temp file left beside it
    code, _, err = run_cli(*argv, "--overwrite")
    assert code == 0, err
    assert out.read_bytes() != b"a file of mine" and out.stat().st_size > 100


@pytest.mark.parametrize("command, argv", [
    ("graph permute", ["graph", "permute", "{graph}", "--seed", "1", "--out", "{graph}"]),
    ("graph induce", ["graph", "induce", "{table}", "--label-column", "label", "--out", "{table}"]),
    ("explain maps", ["explain", "maps", "--model", "{checkpoint}", "--image", "{face}", "--crop", "--out", "{face}"]),
    ("explain", ["explain", "{table}", "--format", "pyfeat", "--out", "{table}"]),
])
def test_out_naming_the_input_is_refused_even_with_overwrite(command, argv, checkpoint, face, tmp_path, run_cli):
    graph = tmp_path / "g.json"
    shutil.copy(Path(__file__).resolve().parents[1] / "graphs" / "emfacs.json", graph)
    table = tmp_path / "t.csv"
    table.write_text("AU4,AU12,label\n" + "".join(f"{i % 2},{(i + 1) % 2},{'happiness' if i % 2 else 'sadness'}\n"
                                                  for i in range(40)))
    paths = {"graph": graph, "table": table, "checkpoint": checkpoint, "face": face}
    before = {p: p.read_bytes() for p in (graph, table, face)}
    argv = [a.format(**paths) for a in argv]
    code, _, err = run_cli(*argv, "--overwrite")
    refused(code, err, "itself: facr never writes over what it reads; choose another --out")
    assert {p: p.read_bytes() for p in before} == before


# ------------------------------------------------------------------ flags out of range
@pytest.mark.parametrize("argv, message", [
    (["data", "synth", "--n", "30", "--subjects", "3", "--workers", "0"],
     "facr: --workers: must be in [1, 256], got 0"),
    (["data", "synth", "--n", "30", "--subjects", "3", "--size", "40000"],
     "facr: --size: must be a multiple of 4 in [32, 1024], got 40000"),
    (["data", "synth", "--n", "2000000"], "facr: --n: must be in [1, 1000000], got 2000000"),
    (["graph", "permute", "emfacs", "--seed", "-1"], "facr: --seed: must be in [0, 4294967295], got -1"),
    (["graph", "induce", "--data", "x", "--seed", "-5"], "facr: --seed: must be in [0, 4294967295], got -5"),
])
def test_flags_out_of_range_are_one_line(argv, message, tmp_path, run_cli):
    out = tmp_path / "out.json" if argv[0] == "graph" else tmp_path / "synth"
    code, _, err = run_cli(*argv, "--out", out)
    refused(code, err, message)
    assert not out.exists()


# ------------------------------------------------------------------ a graph that is not there
@pytest.mark.parametrize("argv, names", [
    (["train", "reasoner", "--data", "{synth}", "--out", "{tmp}/run", "--max-steps", "1"],
     "emfacs, pspi, truth, induced, induced-ovr, permuted"),
    (["audit", "--model", "{checkpoint}", "--data", "{synth}"], "emfacs, pspi, truth, own"),
])
def test_a_graph_that_is_neither_a_file_nor_a_name_lists_the_names_the_command_takes(argv, names, synth, checkpoint,
                                                                                     tmp_path, run_cli):
    argv = [a.format(synth=synth, checkpoint=checkpoint, tmp=tmp_path) for a in argv]
    code, _, err = run_cli(*argv, "--graph", "emfac")
    refused(code, err, f"facr: emfac: no such file (or a name: {names})")
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------ pretrained backbones
def test_pretrained_hub_id_offline_is_one_line(synth, tmp_path, run_cli, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    code, _, err = run_cli("train", "reasoner", "--data", synth, "--graph", "truth", "--max-steps", "1",
                           "--pretrained", "nobody-here/resnet-none", "--out", tmp_path / "run", "--no-progress")
    refused(code, err, "facr: nobody-here/resnet-none: could not be loaded: not a local folder",
            "give the path of a downloaded model folder")


def test_pretrained_folder_of_another_architecture_is_refused(tmp_path):
    from transformers import ViTConfig, ViTModel

    from facr.errors import FacrError
    from facr.models.encoder import Encoder

    folder = tmp_path / "vit"
    ViTModel(ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
                       image_size=32, patch_size=16)).save_pretrained(folder)
    with pytest.raises(FacrError, match="is a vit model; arch resnet-18 needs a resnet model"):
        Encoder(EncoderConfig(arch="resnet-18", pretrained=str(folder)))
