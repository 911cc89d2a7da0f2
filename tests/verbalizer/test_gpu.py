"""The paper-size path on a CUDA GPU: a Qwen3-0.8B-shaped and a Gemma-3-1B-shaped backbone (random
weights from config, saved as a local folder the way a user's copy of the real weights is), loaded
in 4-bit NF4 through bitsandbytes, a verbalizer trained on top, and gated generation on the GPU.

Marked ``gpu``: ``make test`` does not run it; on a CUDA machine with ``facr[quant]`` run
``pytest -m gpu tests/verbalizer/test_gpu.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from facr.testing import tiny_tokenizer
from facr.verbalizer.backbones import load_backbone
from facr.verbalizer.model import Verbalizer, VerbalizerConfig

AUS = ["AU1", "AU2", "AU4", "AU6", "AU12", "AU15", "AU25", "AU26"]
PAPER_SIZES = {  # the shapes of Qwen3.5-0.8B's and Gemma-3-1B's text stacks (vocabulary: the tiny one)
    "qwen3": dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
                  num_key_value_heads=8, head_dim=128),
    "gemma3": dict(hidden_size=1152, intermediate_size=6912, num_hidden_layers=26, num_attention_heads=4,
                   num_key_value_heads=1, head_dim=256),
}


def save_from_config(family: str, sizes: dict, folder: Path) -> Path:
    """A local backbone folder (config, weights, tokenizer) with the given shapes."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, Qwen3Config, Qwen3ForCausalLM

    tok = tiny_tokenizer()
    common = dict(vocab_size=len(tok), max_position_embeddings=512, pad_token_id=tok.pad_token_id,
                  bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, tie_word_embeddings=True, **sizes)
    torch.manual_seed(0)
    model = (Qwen3ForCausalLM(Qwen3Config(**common)) if family == "qwen3"
             else Gemma3ForCausalLM(Gemma3TextConfig(**common, sliding_window=64)))
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def train_and_generate(folder: Path, load_in_4bit: bool, steps: int = 3) -> tuple[Verbalizer, list[str], torch.Tensor]:
    """Load ``folder`` as the backbone, train the soft prompt and AU rows for ``steps`` steps on the
    backbone's device, generate gated rationales for random z; returns (verbalizer, texts, z)."""
    lm, tok = load_backbone(str(folder), load_in_4bit=load_in_4bit)
    v = Verbalizer(VerbalizerConfig(backbone=str(folder), aus=AUS, classes=["happiness", "sadness"],
                                    load_in_4bit=load_in_4bit, max_new_tokens=12), lm, tok)
    device = next(lm.parameters()).device
    v.prompt.to(device)
    frozen = {n: p.detach().clone() for n, p in v.lm.named_parameters() if not p.requires_grad}
    rows_before = v.au_embedding_rows().clone()
    opt = torch.optim.Adam([p for p in v.parameters() if p.requires_grad], lr=1e-2)
    z = torch.rand(4, len(AUS), device=device)
    ids, att, lab = v.instruction_batch(["happiness", "sadness"] * 2, ["the face shows <AU6> and <AU12>."] * 4)
    for _ in range(steps):
        loss = v(z, ids.to(device), att.to(device), lab.to(device)).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    assert torch.isfinite(loss)
    assert not torch.equal(v.au_embedding_rows(), rows_before)  # the AU rows learned ...
    for n, p in v.lm.named_parameters():  # ... and nothing frozen moved
        if n in frozen:
            assert torch.equal(p.detach(), frozen[n]), n
    v.eval()
    zs = torch.rand(16, len(AUS), device=device)
    return v, v.generate(zs, ["happiness"] * 16), zs


pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("family", ["qwen3", "gemma3"])
def test_paper_size_backbone_in_4bit_trains_and_gates_on_cuda(family, tmp_path):
    folder = save_from_config(family, PAPER_SIZES[family], tmp_path / family)
    v, texts, z = train_and_generate(folder, load_in_4bit=True)
    assert v.lm.is_loaded_in_4bit and next(v.lm.parameters()).is_cuda
    for row, text in zip(z.cpu(), texts):
        assert all(row[AUS.index(a)] >= 0.5 for a in v.named_aus(text) if a in AUS), text
