"""Tiny, fully offline stand-ins for tests and docs: a word-level tokenizer, from-config Qwen3 /
Gemma3 causal LMs small enough to train in seconds on a CPU, and a saved tiny LLaVA folder. They
exercise exactly the code paths of the real backbones (embeddings, generate, tied heads, image
tokens); they know no language."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from facr.verbalizer.backbones import BACKBONES, BackboneSpec, quiet_loading

# Every word a rationale template uses, so the tiny tokenizer has no unknown words in tests.
_WORDS = """
the face shows and these are characteristic of a an this is with no visible action unit units
because emotion predicted looks expression signs sign present absent brow lowerer raiser inner outer
upper lid cheek nose wrinkler lip corner puller depressor chin stretcher tightener pressor lips part
jaw drop eyes closed dimpler which point to suggest suggests indicate indicates its it explanation
neutral happiness sadness surprise fear anger disgust contempt pain no_pain
points reads as sign yet reasoner marks that all along alongside also at both call combination conclusion
consistent evidence for here in lead leads mark on pattern plus seen signal signals so still their them
they those together typical what while relies The Because With No Although Despite Even against speak speaks
""".split()


def tiny_tokenizer(extra_words: Iterable[str] = (), extra_special_tokens: Iterable[str] = ()):
    """A word-level ``PreTrainedTokenizerFast`` over the rationale vocabulary (plus "AU", single digits,
    punctuation, and ``extra_words``), with ``<pad>``, ``<unk>``, ``<bos>``, ``<eos>`` and any
    ``extra_special_tokens`` (kept whole, e.g. ``<image>``)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<bos>", "<eos>"]
    words = sorted(set(_WORDS) | {"AU", "AUs", "p"} | set(extra_words))  # "AU12": "AU", "1", "2"
    marks = sorted(set("0123456789.,;:!?()'-=%\n"))
    # A word with and without the space before it (▁), punctuation and single digits: decoding gives
    # back the text that was encoded, spaces included ("happiness (p = 0.93).").
    pieces = specials + ["▁"] + words + ["▁" + w for w in words] + marks
    vocab = {w: i for i, w in enumerate(dict.fromkeys(pieces))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split("\n", behavior="isolated"),
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never"),
        pre_tokenizers.Punctuation(behavior="isolated"), pre_tokenizers.Digits(individual_digits=True)])
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="never")
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="<bos>",
                                   eos_token="<eos>")
    extra_special_tokens = list(extra_special_tokens)
    if extra_special_tokens:
        fast.add_special_tokens({"additional_special_tokens": extra_special_tokens})
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


@dataclass(frozen=True)
class TinyBackboneSpec(BackboneSpec):
    """A registered tiny backbone: built from config by :func:`tiny_backbone`, no weights to load."""

    def build(self):
        return tiny_backbone(self.source)


# `--backbone tiny-qwen3` / `tiny-gemma3` anywhere: the backbone registry imports this module on a miss.
for _family, _arch in (("qwen3", "Qwen3"), ("gemma3", "Gemma3")):
    BACKBONES.register(f"tiny-{_family}",
                       TinyBackboneSpec(f"tiny-{_family}", "tiny", _family,
                                        note=f"2-layer {_arch} from config (tests; knows no language)"))


# The words of EmoLA's two prompts and of the LLaVA-1.5 conversation format, so a tiny VLM sees no <unk>.
_VLM_WORDS = ["What", "AUs", "emotions", "are", "conveyed", "by", "this", "face", "USER", "ASSISTANT"]
# LLaVA-1.5's conversation format: "USER: <image>\n{text} ASSISTANT:" (images first, then text).
_LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}{{ '<image>\n' }}{% endif %}{% endfor %}"
    "{% for item in message['content'] %}{% if item['type'] == 'text' %}{{ item['text'] + ' ' }}{% endif %}"
    "{% endfor %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)


def tiny_llava(path: str | os.PathLike, seed: int = 0) -> Path:
    """Save a tiny ``LlavaForConditionalGeneration`` and its ``LlavaProcessor`` to ``path`` (as
    ``save_pretrained`` lays out a real LLaVA-1.5 folder) and return the folder.

    A 2-layer CLIP vision tower on 32x32 images (8x8 patches: 16 patch tokens plus CLS) under a
    2-layer, 64-wide Llama; the processor expands ``<image>`` into the 16 tokens the projector
    emits (``vision_feature_select_strategy="default"`` drops CLS, as LLaVA-1.5 does), and carries
    LLaVA-1.5's chat template. Weights are random under ``seed``; it knows no language.
    """
    import torch
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    from facr.outputs import output_dir

    image_size, patch_size = 32, 8
    tok = tiny_tokenizer(extra_words=_VLM_WORDS, extra_special_tokens=["<image>"])
    # The PIL backend needs no torchvision; it saves as "CLIPImageProcessor" like a real LLaVA folder.
    images = CLIPImageProcessorPil(size={"shortest_edge": image_size},
                                   crop_size={"height": image_size, "width": image_size})
    processor = LlavaProcessor(image_processor=images, tokenizer=tok, patch_size=patch_size,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               chat_template=_LLAVA_CHAT_TEMPLATE, image_token="<image>")
    vision = CLIPVisionConfig(image_size=image_size, patch_size=patch_size, hidden_size=32, intermediate_size=64,
                              num_hidden_layers=2, num_attention_heads=4, projection_dim=32)
    text = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=512,
                       pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    config = LlavaConfig(vision_config=vision, text_config=text,
                         image_token_index=tok.convert_tokens_to_ids("<image>"),
                         image_seq_length=(image_size // patch_size) ** 2, vision_feature_select_strategy="default",
                         vision_feature_layer=-2)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    path = Path(path)
    with output_dir(path, "tiny-llava") as tmp, quiet_loading():
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
    return path
