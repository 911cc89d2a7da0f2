"""Backbone registry and GGUF import, on the real SmolLM2-135M and Gemma-3-270M packages (offline)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from facr.verbalizer.backbones import BACKBONES, BackboneError, gguf_path, load_backbone, load_gguf

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory) -> Path:
    """`facr models import-gguf smollm2-135m` into a temp folder (once per module)."""
    from facr.cli import main

    out = tmp_path_factory.mktemp("models") / "smollm2-135m"
    assert main(["models", "import-gguf", "smollm2-135m", "--out", str(out)]) == 0
    return out


def test_import_gguf_writes_a_plain_folder_that_computes_what_the_gguf_computes(smollm2):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    meta = json.loads((smollm2 / "facr_backbone.json").read_text())
    gguf = gguf_path(BACKBONES["smollm2-135m"])
    assert meta["gguf_sha256"] == hashlib.sha256(gguf.read_bytes()).hexdigest()
    assert meta["architecture"] == "LlamaForCausalLM" and 130e6 < meta["parameters"] < 140e6
    config = json.loads((smollm2 / "config.json").read_text())
    assert "quantization_config" not in config  # a plain folder: no GGUF quantizer to trip save/load
    folder_model = AutoModelForCausalLM.from_pretrained(smollm2).eval()
    folder_tok = AutoTokenizer.from_pretrained(smollm2)
    gguf_model, gguf_tok = load_gguf(gguf)
    text = "The face shows AU6 and AU12; these are characteristic of"
    ids = folder_tok(text, return_tensors="pt").input_ids
    assert ids.tolist() == gguf_tok(text, return_tensors="pt").input_ids.tolist()
    with torch.no_grad():
        a, b = folder_model(ids).logits, gguf_model(ids).logits
    assert torch.equal(a, b)  # float32 both ways: bit-identical
    assert folder_tok.decode(a[0, -1].argmax()).strip()  # a real next token, not padding


def test_models_list_reports_what_is_installed(run_cli):
    code, out, _ = run_cli("models", "list", "--json")
    rows = {r["name"]: r for r in json.loads(out)["backbones"]}
    assert code == 0 and set(rows) == {"qwen3.5-0.8b", "gemma-3-1b", "smollm2-135m", "gemma-3-270m", "tiny-qwen3",
                                       "tiny-gemma3"}
    assert rows["smollm2-135m"]["status"] == "installed" and rows["gemma-3-270m"]["status"] == "installed"
    assert rows["qwen3.5-0.8b"]["source"] == "Qwen/Qwen3.5-0.8B"


def test_registry_loads_gemma_270m_from_its_chunk_packages(tmp_path):
    model, tokenizer = load_backbone("gemma-3-270m", cache=tmp_path)
    assert type(model).__name__ == "Gemma3ForCausalLM"
    assert (tmp_path / "models" / "gemma-3-270m" / "facr_backbone.json").exists()  # imported once, reused
    ids = tokenizer("Action unit 12 is the lip corner", return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=4, do_sample=False)
    assert out.shape[1] == ids.shape[1] + 4


@pytest.mark.parametrize("argv, needle", [
    (["models", "import-gguf", "{tmp}/none.gguf", "--out", "{tmp}/o"], "no such GGUF file or GGUF backbone"),
    (["models", "import-gguf", "{tmp}/fake.gguf", "--out", "{tmp}/o"], "not a GGUF file"),
    (["models", "import-gguf", "qwen3.5-0.8b", "--out", "{tmp}/o"], "a hub backbone, not a GGUF one"),
    (["models", "import-gguf", "smollm2-135m", "--out", "{tmp}/full"], "is not empty and facr did not write it"),
    (["models", "import-gguf", "smollm2-135m", "--out", "{tmp}/full", "--overwrite"], "facr did not write it"),
])
def test_import_gguf_bad_input_is_one_line(run_cli, tmp_path, argv, needle):
    (tmp_path / "fake.gguf").write_bytes(b"PK\x03\x04 not a gguf")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    code, out, err = run_cli(*[a.format(tmp=tmp_path) for a in argv])
    assert code == 2 and err.startswith("facr: ") and err.count("\n") == 1 and needle in err
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"  # nothing lost


def test_paper_backbones_fail_clearly_offline_and_4bit_needs_a_gpu(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache: the hub id is not there
    with pytest.raises(BackboneError, match="qwen3.5-0.8b: cannot load the backbone"):
        load_backbone("qwen3.5-0.8b")
    if not torch.cuda.is_available():
        with pytest.raises(BackboneError, match="4-bit loading needs a CUDA GPU"):
            load_backbone("gemma-3-1b", load_in_4bit=True)
