"""The verbalizer: a frozen causal LM conditioned on the AU latent z through a soft prompt.

* A small network maps z ∈ [0,1]^K to ``n_prompt`` embeddings prepended to the instruction
  (peft's prompt tuning learns one fixed prompt; here the prompt must depend on z, so it is our
  own module).
* One token per AU (``<AU12>`` …) is added to the tokenizer, its embedding initialised from the AU's
  id as text; only the soft-prompt network and those rows are trained — every backbone weight is
  frozen (a gradient mask keeps the old vocabulary rows fixed, since they share one tensor).
* Decoding gates the AU tokens by z (:mod:`facr.verbalizer.gating`). The stated emotion is the
  reasoner's argmax, given in the instruction, never generated freely.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from facr import au as au_vocab
from facr.config import check_range
from facr.verbalizer.gating import AUGateLogitsProcessor, NameGuardLogitsProcessor

MODES = ("gated", "constrained", "ungated")
# Bounds of a verbalizer config (a checkpoint's config.json too), checked before anything is built:
# the soft prompt holds prompt_hidden × n_prompt × d_model weights.
MAX_PROMPT = 64
MAX_PROMPT_HIDDEN = 4096
MAX_NEW_TOKENS = 4096
_AU_TOKEN = re.compile(r"<AU(\d+)>")


@dataclass
class VerbalizerConfig:
    """Stage-2 settings; saved beside every verbalizer checkpoint."""

    backbone: str = "smollm2-135m"  # a registry name (facr models list) or a local folder
    reasoner: str | None = None  # the reasoner checkpoint whose z it verbalizes (set by training)
    load_in_4bit: bool = False  # load the frozen backbone in NF4 through bitsandbytes (CUDA only, facr[quant])
    aus: list[str] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    n_prompt: int = 8
    prompt_hidden: int = 256
    beta: float | None = None  # gate scale β; None = ∞, the hard gate (an AU with z < ½ is never named)
    mode: str = "gated"
    instruction: str = "Explain why this face shows {emotion}. Name the action units."
    max_new_tokens: int = 40
    repetition_penalty: float = 1.1
    no_repeat_ngram_size: int = 3

    def __post_init__(self):
        self.aus = [au_vocab.canonical(a) for a in self.aus]
        if len(set(self.aus)) != len(self.aus):
            raise ValueError(f"aus: duplicates in {self.aus}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        for name, high in (("n_prompt", MAX_PROMPT), ("prompt_hidden", MAX_PROMPT_HIDDEN),
                           ("max_new_tokens", MAX_NEW_TOKENS)):
            check_range(name, getattr(self, name), 1, high)
        check_range("no_repeat_ngram_size", self.no_repeat_ngram_size, 0, 64)
        if not 0.0 < self.repetition_penalty <= 10.0:
            raise ValueError(f"repetition_penalty must be in (0, 10], got {self.repetition_penalty}")
        if self.beta is not None and not (self.beta > 0 and math.isfinite(self.beta)):
            raise ValueError(f"beta must be a finite number > 0, or null for the hard gate; got {self.beta}")
        if "{emotion}" not in self.instruction:
            raise ValueError("instruction must contain {emotion}")


class SoftPrompt(nn.Module):
    """z [B, K] → ``n`` prompt embeddings [B, n, d]."""

    def __init__(self, n_aus: int, n_prompt: int, hidden: int, d_model: int, scale: float):
        super().__init__()
        self.n_prompt, self.d_model = n_prompt, d_model
        self.net = nn.Sequential(nn.Linear(n_aus, hidden), nn.GELU(), nn.Linear(hidden, n_prompt * d_model))
        with torch.no_grad():  # start at the scale of the backbone's own token embeddings
            self.net[-1].weight.mul_(scale / max(float(self.net[-1].weight.std()), 1e-8) / 4)
            self.net[-1].bias.zero_()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(z.shape[0], self.n_prompt, self.d_model)


def au_token(au: str) -> str:
    return f"<{au_vocab.canonical(au)}>"


def clean_text(text: str) -> str:
    """``<AU12>`` → ``AU12`` for people (the AU parser reads either)."""
    return _AU_TOKEN.sub(lambda m: f"AU{m.group(1)}", text)


class Verbalizer(nn.Module):
    """Frozen LM + z-conditioned soft prompt + trainable AU-token embeddings."""

    def __init__(self, config: VerbalizerConfig, lm, tokenizer):
        super().__init__()
        if not config.aus:
            raise ValueError("config.aus is empty: the verbalizer needs the reasoner's AU order")
        self.config = config
        self.lm = lm
        self.tokenizer = tokenizer
        tokens = [au_token(a) for a in config.aus]
        tokenizer.add_tokens([t for t in tokens if t not in tokenizer.get_vocab()])
        self.au_token_ids = tokenizer.convert_tokens_to_ids(tokens)
        emb = lm.get_input_embeddings()
        if len(tokenizer) > emb.weight.shape[0]:
            old = emb.weight.shape[0]
            lm.resize_token_embeddings(len(tokenizer), mean_resizing=False)
            emb = lm.get_input_embeddings()
            with torch.no_grad():  # each new row starts as the mean embedding of the AU's id written out
                for a, tid in zip(config.aus, self.au_token_ids):
                    if tid >= old:
                        ids = tokenizer(a, add_special_tokens=False).input_ids or [tokenizer.unk_token_id]
                        emb.weight[tid] = emb.weight[torch.as_tensor(ids)].mean(dim=0)
        for p in lm.parameters():
            p.requires_grad_(False)
        mask = torch.zeros(emb.weight.shape[0], 1)
        mask[torch.as_tensor(self.au_token_ids)] = 1.0
        self.register_buffer("_row_mask", mask, persistent=False)
        trainable = [emb.weight]
        out = lm.get_output_embeddings()
        if out is not None and out.weight is not emb.weight:
            trainable.append(out.weight)
        for w in trainable:  # only the AU rows of the (shared) vocabulary tensors learn
            w.requires_grad_(True)
            w.register_hook(lambda g: g * self._row_mask.to(device=g.device, dtype=g.dtype))
        d_model = emb.weight.shape[1]
        self.prompt = SoftPrompt(len(config.aus), config.n_prompt, config.prompt_hidden, d_model,
                                 float(emb.weight.detach().std()))

    # ------------------------------------------------------------------ pieces
    def trainable_parameter_names(self) -> list[str]:
        """What an optimizer may touch: the soft-prompt network, and the vocabulary tensors of which
        only the AU rows receive gradient."""
        return [n for n, p in self.named_parameters() if p.requires_grad]

    def au_embedding_rows(self) -> torch.Tensor:
        return self.lm.get_input_embeddings().weight[torch.as_tensor(self.au_token_ids)].detach()

    def instruction_batch(self, emotions: list[str], targets: list[str] | None = None):
        """Token ids (left-padded) of the instruction for each emotion, plus the target rationale when
        training; returns (input_ids, attention_mask, labels or None)."""
        tok = self.tokenizer
        prompts = [self.config.instruction.format(emotion=e) + " " for e in emotions]
        if targets is None:
            enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
            return enc.input_ids, enc.attention_mask, None
        rows, labels = [], []
        eos = [tok.eos_token_id] if tok.eos_token_id is not None else []
        for p, t in zip(prompts, targets):
            p_ids = tok(p, add_special_tokens=False).input_ids
            t_ids = tok(t, add_special_tokens=False).input_ids + eos
            rows.append(p_ids + t_ids)
            labels.append([-100] * len(p_ids) + t_ids)
        width = max(len(r) for r in rows)
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        lab = torch.full((len(rows), width), -100, dtype=torch.long)
        att = torch.zeros((len(rows), width), dtype=torch.long)
        for i, (r, lb) in enumerate(zip(rows, labels)):  # left padding, as for generation
            ids[i, width - len(r):] = torch.as_tensor(r)
            lab[i, width - len(r):] = torch.as_tensor(lb)
            att[i, width - len(r):] = 1
        return ids, att, lab

    def embed(self, z: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        """[soft prompt(z) ; token embeddings] and the matching attention mask. The prompt goes first and
        the left padding of shorter rows sits, masked, between it and their tokens."""
        tokens = self.lm.get_input_embeddings()(input_ids)
        prompt = self.prompt(z.to(tokens.dtype)).to(tokens.dtype)
        mask = torch.cat([torch.ones(z.shape[0], prompt.shape[1], dtype=attention_mask.dtype,
                                     device=attention_mask.device), attention_mask], dim=1)
        return torch.cat([prompt, tokens], dim=1), mask

    def forward(self, z: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                labels: torch.Tensor | None = None):
        embeds, mask = self.embed(z, input_ids, attention_mask)
        if labels is not None:
            labels = torch.cat([torch.full((labels.shape[0], self.config.n_prompt), -100, dtype=labels.dtype,
                                           device=labels.device), labels], dim=1)
        return self.lm(inputs_embeds=embeds, attention_mask=mask, labels=labels)

    # -------------------------------------------------------------- generation
    def logits_processor(self, z: torch.Tensor, mode: str | None = None, allowed: torch.Tensor | None = None):
        mode = mode or self.config.mode
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if mode == "ungated":
            return []
        if mode == "constrained" and allowed is None:
            raise ValueError("constrained mode needs the allowed (invoked) AUs of each sample")
        allowed = allowed if mode == "constrained" else None
        processors = [AUGateLogitsProcessor(self.au_token_ids, z, self.config.beta, allowed)]
        if self.config.beta is None:  # the hard gate holds for every spelling, not only the AU tokens
            ok = (z >= 0.5) if allowed is None else (z >= 0.5) & allowed.to(z.device).bool()
            numbers = [au_vocab.parse(a) for a in self.config.aus]
            sets = [{numbers[k] for k in torch.nonzero(row).flatten().tolist()} for row in ok.cpu()]
            processors.append(NameGuardLogitsProcessor(self.tokenizer, sets))
        return processors

    @torch.no_grad()
    def generate(self, z: torch.Tensor, emotions: list[str], *, mode: str | None = None,
                 allowed: torch.Tensor | None = None, extra_processors=(), **kwargs) -> list[str]:
        """One rationale per row of ``z`` for the stated ``emotions`` (the reasoner's argmax). Greedy
        with the configured repetition penalty and no-repeat n-gram size; AU tokens gated by z."""
        from transformers import LogitsProcessorList

        ids, att, _ = self.instruction_batch(emotions)
        device = next(self.lm.parameters()).device
        embeds, mask = self.embed(z.to(device), ids.to(device), att.to(device))
        processors = LogitsProcessorList([*extra_processors, *self.logits_processor(z.to(device), mode, allowed)])
        settings = dict(max_new_tokens=self.config.max_new_tokens, do_sample=False,
                        repetition_penalty=self.config.repetition_penalty,
                        no_repeat_ngram_size=self.config.no_repeat_ngram_size,
                        pad_token_id=self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None
                        else self.tokenizer.eos_token_id)
        settings.update(kwargs)
        with warnings.catch_warnings():  # the penalties apply to generated tokens only: what we want
            warnings.filterwarnings("ignore", message=r"Passing `(repetition_penalty|no_repeat_ngram_size)`")
            out = self.lm.generate(inputs_embeds=embeds, attention_mask=mask, logits_processor=processors, **settings)
        texts = self.tokenizer.batch_decode(out, skip_special_tokens=True)
        return [clean_text(t).strip() for t in texts]

    @staticmethod
    def named_aus(text: str) -> list[str]:
        """The AUs a rationale names, each once, in order (the one parser, ``facr.au.extract``)."""
        return [f"AU{n}" for n in au_vocab.extract(text)]


# ------------------------------------------------------------------ checkpoints
VERBALIZER_FILES = ("verbalizer.safetensors", "config.json")


def save_verbalizer(v: Verbalizer, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write what training changed — the soft-prompt network and the AU-token rows — as safetensors,
    plus ``config.json`` naming the backbone; the folder is built beside ``path`` and renamed in
    (an existing ``path``: only a verbalizer checkpoint facr wrote, with ``overwrite``)."""
    from safetensors.torch import save_file

    from facr.config import save_config
    from facr.outputs import output_dir

    path = Path(path)
    with output_dir(path, "verbalizer", overwrite=overwrite) as tmp:
        state = {f"prompt.{k}": t.detach().contiguous().cpu() for k, t in v.prompt.state_dict().items()}
        state["au_input_rows"] = v.au_embedding_rows().contiguous().cpu()
        out = v.lm.get_output_embeddings()
        if out is not None and out.weight is not v.lm.get_input_embeddings().weight:
            state["au_output_rows"] = out.weight[torch.as_tensor(v.au_token_ids)].detach().contiguous().cpu()
        save_file(state, str(tmp / "verbalizer.safetensors"), metadata={"format": "pt", "facr": "verbalizer"})
        save_config(v.config, tmp / "config.json")
    return path


def load_verbalizer(path: str | os.PathLike, *, backbone: str | None = None, cache=None,
                    device: str | None = None) -> Verbalizer:
    """A verbalizer folder written by :func:`save_verbalizer`, on its backbone (or ``backbone``), on
    ``device`` (default: CUDA when there is one; a 4-bit backbone stays where bitsandbytes put it)."""
    from facr.config import from_dict
    from facr.errors import FacrError
    from facr.models.reasoner import CheckpointError, read_json_file, read_weights
    from facr.verbalizer.backbones import load_backbone

    path = Path(path)
    missing = [f for f in VERBALIZER_FILES if not (path / f).exists()]
    if missing:
        raise FacrError(path, f"not a facr verbalizer checkpoint: missing {', '.join(missing)}")
    config = from_dict(VerbalizerConfig, read_json_file(path / "config.json"), str(path / "config.json"))
    if backbone is not None:
        config.backbone = backbone
    state, _ = read_weights(path / "verbalizer.safetensors")
    lm, tok = load_backbone(config.backbone, load_in_4bit=config.load_in_4bit, cache=cache)
    v = Verbalizer(config, lm, tok)
    weights = path / "verbalizer.safetensors"
    prompt = {k[len("prompt."):]: t for k, t in state.items() if k.startswith("prompt.")}
    expected = {k: tuple(t.shape) for k, t in v.prompt.state_dict().items()}
    if {k: tuple(t.shape) for k, t in prompt.items()} != expected:
        raise CheckpointError(weights, f"soft prompt tensors do not fit config.json on backbone {config.backbone}")
    v.prompt.load_state_dict(prompt)
    ids = torch.as_tensor(v.au_token_ids)
    rows = state.get("au_input_rows")
    if rows is None or rows.shape != (len(ids), v.lm.get_input_embeddings().weight.shape[1]):
        raise CheckpointError(weights, f"AU rows {None if rows is None else tuple(rows.shape)} do not fit backbone "
                                       f"{config.backbone}")
    out_rows = state.get("au_output_rows")
    if out_rows is not None and (v.lm.get_output_embeddings() is None or out_rows.shape != rows.shape):
        raise CheckpointError(weights, f"AU output rows {tuple(out_rows.shape)} do not fit backbone {config.backbone}")
    with torch.no_grad():
        v.lm.get_input_embeddings().weight[ids] = rows.to(v.lm.get_input_embeddings().weight.dtype)
        if out_rows is not None:
            v.lm.get_output_embeddings().weight[ids] = out_rows
    if config.load_in_4bit:
        v.prompt.to(next(v.lm.parameters()).device)
    else:
        v.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return v.eval()
