"""The verbalizer: a frozen causal LM conditioned on the AU latent z through a soft prompt.

* A small network maps z ∈ [0,1]^K to ``n_prompt`` embeddings prepended to the instruction
  (peft's prompt tuning learns one fixed prompt; here the prompt must depend on z, so it is our
  own module).
* One token per AU (``<AU12>`` …) is added to the tokenizer, its embedding initialised from the AU's
  id as text. Only the soft-prompt network and the AU rows are trained, the rows as their own small
  parameter (K × d): every backbone weight is frozen, and the training loss computes the vocabulary
  logits only where there is a target token, so a 262 k vocabulary (Gemma-3) costs a matrix
  product, not an optimizer state of its size. The rows are copied into the backbone's vocabulary
  before decoding.
* Decoding (``mode``): ``gated`` (default) realises the reasoner's plan — exactly the AUs of T in
  FACS form, the stated emotion, nothing else (:mod:`facr.verbalizer.plan`); ``soft`` is the
  paper's finite-β gate on the AU tokens (:mod:`facr.verbalizer.gating`); ``ungated`` the free
  control. The stated emotion is the reasoner's argmax, given in the instruction, never generated
  freely.
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
from facr.verbalizer.gating import AUGateLogitsProcessor
from facr.verbalizer.plan import PlanLogitsProcessor, RationalePlan

MODES = ("gated", "soft", "ungated")
# Earlier names of a mode, read from older checkpoints: the allowed-set mode is part of ``gated`` now.
LEGACY_MODES = {"constrained": "gated"}
# Fields older checkpoints' config.json may hold that no longer mean anything (the free-prose bound of
# the first plan-and-realise decoder, whose phrases are now a closed grammar): read and dropped.
LEGACY_FIELDS = ("max_prose",)
SOFT_BETA = 10.0  # the soft gate's β when a config gives none
# Bounds of a verbalizer config (a checkpoint's config.json too), checked before anything is built:
# the soft prompt holds prompt_hidden × n_prompt × d_model weights.
MAX_PROMPT = 64
MAX_PROMPT_HIDDEN = 4096
MAX_NEW_TOKENS = 4096
_AU_TOKEN = re.compile(r"<AU(\d+)>")


@dataclass
class VerbalizerConfig:
    """Stage-2 settings; saved beside every verbalizer checkpoint."""

    # metadata: the flags of `facr train verbalizer` (facr.flags)
    backbone: str = field(default="smollm2-135m", metadata={
        "help": "registry name (facr models list) or a local folder"})
    reasoner: str | None = None  # the reasoner checkpoint whose z it verbalizes (set by training)
    load_in_4bit: bool = field(default=False, metadata={  # NF4 through bitsandbytes
        "help": "the backbone in 4-bit NF4 (bitsandbytes; CUDA GPU, pip install 'facr[quant]')"})
    aus: list[str] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    n_prompt: int = 8
    prompt_hidden: int = 256
    beta: float | None = None  # the soft mode's gate scale β (None: SOFT_BETA); gated is exact, ungated free
    mode: str = "gated"
    instruction: str = "Explain why this face shows {emotion}. Name the action units."
    max_new_tokens: int = 40
    repetition_penalty: float = 1.1
    no_repeat_ngram_size: int = 3

    def __post_init__(self):
        self.aus = [au_vocab.canonical(a) for a in self.aus]
        self.mode = LEGACY_MODES.get(self.mode, self.mode)
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
            raise ValueError(f"beta must be a finite number > 0, or null for {SOFT_BETA}; got {self.beta}")
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
    """``<AU12>`` → ``AU12`` for people (the AU parser reads either), a space before it where a
    word runs into it ("shows<AU12>" → "shows AU12"), one space between words."""
    text = _AU_TOKEN.sub(lambda m: (" " if m.start() and text[m.start() - 1].isalnum() else "") + f"AU{m.group(1)}",
                         text)
    return re.sub(r"(?<=\S) {2,}(?=\S)", " ", text)  # one space between words


class Verbalizer(nn.Module):
    """Frozen LM + z-conditioned soft prompt + trainable AU-token rows."""

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
            lm.resize_token_embeddings(len(tokenizer), mean_resizing=False)
            emb = lm.get_input_embeddings()
        for p in lm.parameters():
            p.requires_grad_(False)
        ids = torch.as_tensor(self.au_token_ids)
        with torch.no_grad():  # each AU row starts as the mean embedding of the AU's id written out
            rows = []
            for a in config.aus:
                text_ids = tokenizer(a, add_special_tokens=False).input_ids or [tokenizer.unk_token_id]
                rows.append(emb.weight[torch.as_tensor(text_ids)].float().mean(dim=0))
            rows = torch.stack(rows)
        self.au_in = nn.Parameter(rows)
        out = lm.get_output_embeddings()
        self.tied = out is None or out.weight is emb.weight
        self.au_out = None if self.tied else nn.Parameter(rows.clone())
        slot = torch.full((emb.weight.shape[0],), -1, dtype=torch.long)
        slot[ids] = torch.arange(len(ids))
        self.register_buffer("_au_slot", slot, persistent=False)
        self.embed_scale = float(getattr(emb, "embed_scale", 1.0))  # Gemma scales its embeddings by √d
        self.softcap = getattr(lm.config, "final_logit_softcapping", None)
        d_model = emb.weight.shape[1]
        self.prompt = SoftPrompt(len(config.aus), config.n_prompt, config.prompt_hidden, d_model,
                                 float(emb.weight.detach().float().std()))
        self.sync_rows()

    # ------------------------------------------------------------------ pieces
    def trainable_parameter_names(self) -> list[str]:
        """What an optimizer may touch: the soft-prompt network and the AU rows — nothing of the backbone."""
        return [n for n, p in self.named_parameters() if p.requires_grad]

    def au_embedding_rows(self) -> torch.Tensor:
        return self.au_in.detach()

    @torch.no_grad()
    def sync_rows(self) -> None:
        """Copy the trained AU rows into the backbone's vocabulary tensors (what ``generate`` reads)."""
        ids = torch.as_tensor(self.au_token_ids, device=self.au_in.device)
        emb = self.lm.get_input_embeddings().weight
        emb[ids.to(emb.device)] = self.au_in.to(device=emb.device, dtype=emb.dtype)
        if not self.tied:
            out = self.lm.get_output_embeddings().weight
            out[ids.to(out.device)] = self.au_out.to(device=out.device, dtype=out.dtype)

    def plan_ids(self, plan: RationalePlan, index: int = 0) -> list[int]:
        """The token ids of ``plan`` realised in template ``index``, piece by piece as the gated decoder
        emits them (:meth:`RationalePlan.segments`), ending with end-of-text: a training target."""
        tok = self.tokenizer
        ids: list[int] = []
        for kind, text in plan.segments(index):
            if kind == "au":
                ids.append(self.au_token_ids[self.config.aus.index(text)])
            else:
                ids += tok(text, add_special_tokens=False).input_ids
        return ids + ([tok.eos_token_id] if tok.eos_token_id is not None else [])

    def instruction_batch(self, emotions: list[str], targets: list | None = None):
        """Token ids (left-padded) of the instruction for each emotion, plus the target rationale when
        training (a text, or token ids from :meth:`plan_ids`, which end with end-of-text already);
        returns (input_ids, attention_mask, labels or None)."""
        tok = self.tokenizer
        prompts = [self.config.instruction.format(emotion=e) + " " for e in emotions]
        if targets is None:
            enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
            return enc.input_ids, enc.attention_mask, None
        rows, labels = [], []
        eos = [tok.eos_token_id] if tok.eos_token_id is not None else []
        for p, t in zip(prompts, targets):
            p_ids = tok(p, add_special_tokens=False).input_ids
            t_ids = list(t) if not isinstance(t, str) else tok(t, add_special_tokens=False).input_ids + eos
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

    def token_embeddings(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The backbone's embeddings of ``input_ids``, with the AU tokens' taken from the trainable rows."""
        tokens = self.lm.get_input_embeddings()(input_ids)
        slot = self._au_slot.to(input_ids.device)[input_ids]
        is_au = slot >= 0
        if not bool(is_au.any()):
            return tokens
        rows = (self.au_in * self.embed_scale).to(tokens.dtype)[slot.clamp(min=0)]
        return torch.where(is_au[..., None], rows, tokens)

    def embed(self, z: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        """[soft prompt(z) ; token embeddings] and the matching attention mask. The prompt goes first and
        the left padding of shorter rows sits, masked, between it and their tokens."""
        tokens = self.token_embeddings(input_ids)
        prompt = self.prompt(z.to(tokens.dtype)).to(tokens.dtype)
        mask = torch.cat([torch.ones(z.shape[0], prompt.shape[1], dtype=attention_mask.dtype,
                                     device=attention_mask.device), attention_mask], dim=1)
        return torch.cat([prompt, tokens], dim=1), mask

    def forward(self, z: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                labels: torch.Tensor | None = None):
        """The backbone's output on [soft prompt(z) ; tokens]. With ``labels``: ``.loss``, the mean
        cross-entropy of the target tokens, whose logits alone are computed (the AU columns from the
        trainable rows) — what training calls."""
        embeds, mask = self.embed(z, input_ids, attention_mask)
        if labels is None:
            return self.lm(inputs_embeds=embeds, attention_mask=mask)
        from types import SimpleNamespace

        hidden = self.lm.get_decoder()(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
        hidden = hidden[:, self.config.n_prompt:][:, :-1]  # position t predicts token t + 1
        target = labels[:, 1:]
        where = target != -100
        h = hidden[where]  # [T, d]
        logits = self.lm.get_output_embeddings()(h).float()
        au_rows = self.au_in if self.tied else self.au_out
        logits[:, torch.as_tensor(self.au_token_ids, device=h.device)] = h.float() @ au_rows.float().t()
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        loss = nn.functional.cross_entropy(logits, target[where])
        return SimpleNamespace(loss=loss, logits=None)

    # -------------------------------------------------------------- generation
    def logits_processor(self, z: torch.Tensor, mode: str | None = None, plans: list[RationalePlan] | None = None):
        """The processors of one ``mode`` for the rows of ``z`` (``gated``: one plan per row)."""
        mode = LEGACY_MODES.get(mode, mode) or self.config.mode
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if mode == "ungated":
            return []
        if mode == "soft":
            return [AUGateLogitsProcessor(self.au_token_ids, z, self.config.beta or SOFT_BETA)]
        if plans is None or len(plans) != z.shape[0]:
            raise ValueError("gated mode needs one RationalePlan per row of z (the reasoner's target AUs and "
                             "stated emotion)")
        size = self.lm.get_output_embeddings().weight.shape[0]
        return [PlanLogitsProcessor(self.tokenizer, self.config.aus, self.au_token_ids, self.gate_plans(z, plans),
                                    size)]

    def gate_plans(self, z: torch.Tensor, plans: list[RationalePlan]) -> list[RationalePlan]:
        """The hard gate on a plan: an AU the latent does not show (z_k < ½) is never in it."""
        index = {a: k for k, a in enumerate(self.config.aus)}
        out = []
        for row, p in zip(z.float().cpu(), plans):
            aus = [a for a in p.aus if a in index and float(row[index[a]]) >= au_vocab.ACTIVE]
            out.append(p if aus == p.aus else RationalePlan(aus, p.emotion, p.probability,
                                                            [a for a in p.against if a in aus]))
        return out

    @torch.no_grad()
    def generate(self, z: torch.Tensor, emotions: list[str], *, mode: str | None = None,
                 plans: list[RationalePlan] | None = None, extra_processors=(), return_steps: bool = False,
                 **kwargs):
        """One rationale per row of ``z`` for the stated ``emotions`` (the reasoner's argmax). Greedy
        with the configured repetition penalty and no-repeat n-gram size. ``gated`` realises
        ``plans`` (one per row) and decodes as many tokens as its plans can need; ``soft`` biases the
        AU tokens by z; ``ungated`` is free. ``return_steps``: (texts, decoding steps taken)."""
        from transformers import LogitsProcessorList

        self.sync_rows()
        ids, att, _ = self.instruction_batch(emotions)
        device = next(self.lm.parameters()).device
        embeds, mask = self.embed(z.to(device), ids.to(device), att.to(device))
        own = self.logits_processor(z.to(device), mode, plans)
        processors = LogitsProcessorList([*extra_processors, *own])
        settings = dict(max_new_tokens=self.config.max_new_tokens, do_sample=False,
                        repetition_penalty=self.config.repetition_penalty,
                        no_repeat_ngram_size=self.config.no_repeat_ngram_size,
                        pad_token_id=self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None
                        else self.tokenizer.eos_token_id)
        if own and isinstance(own[-1], PlanLogitsProcessor):  # the plan bounds the length, and repeats
            # n-grams by design (") , <AU6> (" after ") , <AU1> ("): no n-gram ban on top of it
            settings.update(max_new_tokens=own[-1].max_new_tokens(), no_repeat_ngram_size=0)
        settings.update(kwargs)
        with warnings.catch_warnings():  # the penalties apply to generated tokens only: what we want
            warnings.filterwarnings("ignore", message=r"Passing `(repetition_penalty|no_repeat_ngram_size)`")
            out = self.lm.generate(inputs_embeds=embeds, attention_mask=mask, logits_processor=processors, **settings)
        texts = [clean_text(t).strip() for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]
        return (texts, int(out.shape[0] * out.shape[1])) if return_steps else texts

    @staticmethod
    def named_aus(text: str) -> list[str]:
        """The AUs a rationale names, each once, in order (the one parser, :func:`facr.au.named`)."""
        return au_vocab.named(text)

    @torch.no_grad()
    def fluency_nll(self, texts: list[str], emotions: list[str], batch_size: int = 32) -> list[float | None]:
        """Mean per-token negative log-likelihood of each (clean, as a person reads it) text under the
        frozen backbone alone — no soft prompt, no AU tokens — after the instruction for its emotion;
        None for an empty text. The figure that tells whether the wording reads as the LM's language."""
        tok = self.tokenizer
        device = next(self.lm.parameters()).device
        eos = [tok.eos_token_id] if tok.eos_token_id is not None else []
        out: list[float | None] = []
        for i in range(0, len(texts), batch_size):
            rows, spans = [], []
            for text, e in zip(texts[i:i + batch_size], emotions[i:i + batch_size]):
                p_ids = tok(self.config.instruction.format(emotion=e) + " ", add_special_tokens=False).input_ids
                t_ids = tok(clean_text(text).strip(), add_special_tokens=False).input_ids if text.strip() else []
                rows.append(p_ids + t_ids + (eos if t_ids else []))
                spans.append((len(p_ids), len(t_ids) + (len(eos) if t_ids else 0)))
            width = max(len(r) for r in rows)
            pad = tok.pad_token_id if tok.pad_token_id is not None else 0
            ids = torch.full((len(rows), width), pad, dtype=torch.long)
            att = torch.zeros((len(rows), width), dtype=torch.long)
            for j, r in enumerate(rows):  # right padding: positions stay those of an unpadded row
                ids[j, :len(r)] = torch.as_tensor(r)
                att[j, :len(r)] = 1
            logits = self.lm(input_ids=ids.to(device), attention_mask=att.to(device)).logits.float()
            logits[..., torch.as_tensor(self.au_token_ids, device=logits.device)] = float("-inf")  # backbone's own
            logp = torch.log_softmax(logits[:, :-1], dim=-1)
            for j, (start, n) in enumerate(spans):
                if n == 0:
                    out.append(None)
                    continue
                tgt = ids[j, start:start + n].to(device)
                out.append(float(-logp[j, start - 1:start - 1 + n].gather(1, tgt[:, None]).mean()))
        return out


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
        state["au_input_rows"] = v.au_embedding_rows().float().contiguous().cpu()
        if not v.tied:
            state["au_output_rows"] = v.au_out.detach().float().contiguous().cpu()
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
    data = read_json_file(path / "config.json")
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k not in LEGACY_FIELDS}
    config = from_dict(VerbalizerConfig, data, str(path / "config.json"))
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
    if (out_rows is None) != v.tied or (out_rows is not None and out_rows.shape != rows.shape):
        raise CheckpointError(weights, f"AU output rows {None if out_rows is None else tuple(out_rows.shape)} do "
                                       f"not fit backbone {config.backbone}")
    with torch.no_grad():
        v.au_in.copy_(rows.float())
        if out_rows is not None:
            v.au_out.copy_(out_rows.float())
    v.sync_rows()
    if config.load_in_4bit:  # the backbone stays where bitsandbytes put it; facr's own parts join it
        dev = next(v.lm.parameters()).device
        v.prompt.to(dev)
        for p in (v.au_in, v.au_out):
            if p is not None:
                p.data = p.data.to(dev)
    else:
        v.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return v.eval()
