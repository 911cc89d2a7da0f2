"""Tiny, fully offline stand-ins for tests and docs: a word-level tokenizer and from-config Qwen3 /
Gemma3 causal LMs small enough to train in seconds on a CPU. They exercise exactly the code paths
of the real backbones (embeddings, generate, tied heads); they know no language."""

from __future__ import annotations

from facr import au as au_vocab

# Every word a rationale template uses, so the tiny tokenizer has no unknown words in tests.
_WORDS = """
the face shows and these are characteristic of a an this is with no visible action unit units
because emotion predicted looks expression signs sign present absent brow lowerer raiser inner outer
upper lid cheek nose wrinkler lip corner puller depressor chin stretcher tightener pressor lips part
jaw drop eyes closed dimpler which point to suggest suggests indicate indicates its it explanation
neutral happiness sadness surprise fear anger disgust contempt pain no_pain
""".split()


def tiny_tokenizer():
    """A word-level ``PreTrainedTokenizerFast`` over the rationale vocabulary (plus AU ids, digits,
    punctuation), with ``<pad>``, ``<unk>``, ``<bos>``, ``<eos>``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<bos>", "<eos>"]
    words = sorted(set(_WORDS) | {f"AU{n}" for n in au_vocab.AUS} | set("0123456789.,;:!?()'-"))
    vocab = {w: i for i, w in enumerate(specials + words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok.decoder = decoders.WordPiece(prefix="##")  # joins tokens with spaces
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="<bos>",
                                   eos_token="<eos>")
    fast.padding_side = "left"
    return fast


def tiny_backbone(family: str = "qwen3", seed: int = 0):
    """(model, tokenizer): a 2-layer, 64-wide ``Qwen3ForCausalLM`` or ``Gemma3ForCausalLM`` from config."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, Qwen3Config, Qwen3ForCausalLM

    tok = tiny_tokenizer()
    common = dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=512,
                  pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                  tie_word_embeddings=True)
    torch.manual_seed(seed)
    if family == "qwen3":
        model = Qwen3ForCausalLM(Qwen3Config(**common))
    elif family == "gemma3":
        model = Gemma3ForCausalLM(Gemma3TextConfig(**common, sliding_window=64))
    else:
        raise ValueError(f"family must be 'qwen3' or 'gemma3', got {family!r}")
    return model.eval(), tok
