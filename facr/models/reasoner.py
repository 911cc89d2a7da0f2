"""The Stage-1 reasoner: x → z = σ(f_enc(x)) ∈ (0,1)^K → emotion head → ŷ (paper Eq. 1).

One latent unit per AU (``config.aus``, the K order shared with the graph's sign matrix), one
logit per class (``config.classes``). The head is small on purpose (paper §3.3): the
counterfactual-faithfulness objective, not the architecture, decides which AUs it depends on.
A checkpoint is a folder: ``model.safetensors`` + ``config.json`` + ``graph.json`` — no pickle.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from facr import au as au_vocab
from facr.causal import Effects, intervention_effects, intervention_effects_loop
from facr.config import from_dict, save_config
from facr.errors import FacrError
from facr.graph import AUGraph, load_graph, save_graph
from facr.graph import validate as graph_rules
from facr.models.encoder import Encoder, EncoderConfig


HEADS = ("mlp", "linear", "agcm")


@dataclass
class ReasonerConfig:
    """Architecture of a reasoner: encoder, AU latent order (K), class order (C), head."""

    aus: list[str]
    classes: list[str]
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    head: str = "mlp"  # mlp | linear | agcm (AGCM's attention-guided concept head, facr.models.agcm)
    head_hidden: int = 64
    dropout: float = 0.0
    concept_embedding: int = 16  # head agcm: size of each AU's activated / inactivated embedding

    def __post_init__(self):
        if isinstance(self.encoder, dict):
            self.encoder = EncoderConfig(**self.encoder)
        if not self.aus:
            raise ValueError("aus: the latent needs at least one AU")
        self.aus = [au_vocab.canonical(a) for a in self.aus]
        if len(set(self.aus)) != len(self.aus):
            raise ValueError(f"aus: duplicates in {self.aus}")
        if len(self.classes) < 2:
            raise ValueError(f"classes: need at least two classes, got {self.classes}")
        for c in self.classes:
            problem = graph_rules.problem_class_id(c)
            if problem:
                raise ValueError(f"classes: {problem}")
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, got {self.head!r}")
        if self.concept_embedding < 1:
            raise ValueError(f"concept_embedding must be >= 1, got {self.concept_embedding}")
        if self.head_hidden < 1:
            raise ValueError(f"head_hidden must be >= 1, got {self.head_hidden}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


@dataclass
class ReasonerOutput:
    z_logits: torch.Tensor  # f_enc(x), [B, K]
    z: torch.Tensor  # σ(f_enc(x)), [B, K]
    logits: torch.Tensor  # ŷ = head(z), [B, C]
    effects: Effects | None = None  # ŷ under every do(z_k = 0), when asked for
    attention: torch.Tensor | None = None  # head agcm: the spatial concept attention â, [B, K, h, w]


@dataclass
class Latent:
    """One batch's AU latent and the z → logits function ``facr.causal`` intervenes on.

    For the plain heads ``head`` is the head module itself (a function of z alone); for ``agcm`` it
    is bound to the batch's concept embeddings (see :mod:`facr.models.agcm`)."""

    z_logits: torch.Tensor
    head: Callable[[torch.Tensor], torch.Tensor]
    attention: torch.Tensor | None = None

    @property
    def z(self) -> torch.Tensor:
        return torch.sigmoid(self.z_logits)


class Reasoner(nn.Module):
    """Encoder → AU latent z → class head. ``head(z)`` is what ``facr.causal`` intervenes on."""

    def __init__(self, config: ReasonerConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config.encoder)
        K, C = len(config.aus), len(config.classes)
        if config.head == "agcm":
            from facr.models.agcm import AGCMConcepts, AGCMHead

            self.concepts = AGCMConcepts(self.encoder.dim, K, config.concept_embedding)
            self.head = AGCMHead(K, C, config.concept_embedding)
            return
        self.to_au = nn.Linear(self.encoder.dim, K)
        if config.head == "linear":
            self.head = nn.Linear(K, C)
        else:
            self.head = nn.Sequential(
                nn.Linear(K, config.head_hidden), nn.GELU(), nn.Dropout(config.dropout),
                nn.Linear(config.head_hidden, C),
            )

    @property
    def z_only(self) -> bool:
        """Whether ŷ is a function of z alone (mlp, linear), so a stored z can be intervened on
        without the image."""
        return self.config.head != "agcm"

    def latent_head(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """The z → logits head for callers that hold z without the image (the rationale audit,
        the verbalizer's evaluation). ``agcm`` has none: its logits also read the image's concept
        embeddings."""
        if not self.z_only:
            raise FacrError(None, "head agcm: its logits read the image's concept embeddings as well as z, so an "
                                  "intervention needs the image (use Reasoner.latent(pixels).head); train the "
                                  "verbalizer and its audits on an mlp or linear reasoner")
        return self.head

    def _pixels(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return normalize_images(pixel_values) if pixel_values.dtype == torch.uint8 else pixel_values

    def latent(self, pixel_values: torch.Tensor) -> Latent:
        """z's logits and the bound head for a batch (uint8 or normalised pixels)."""
        pixel_values = self._pixels(pixel_values)
        if self.z_only:
            return Latent(self.to_au(self.encoder(pixel_values)), self.head)
        return self.latent_from_trace(self.encoder.trace(pixel_values))

    def latent_from_trace(self, trace) -> Latent:
        """:meth:`latent` from an :class:`~facr.models.encoder.EncoderTrace` (region maps need the
        layers' activations in the autograd graph)."""
        if self.z_only:
            return Latent(self.to_au(trace.pooled), self.head)
        c = self.concepts(self.encoder.feature_grid(trace))
        return Latent(c.z_logits, self.head.bind(c.positive, c.negative), c.attention)

    def encode(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """f_enc(x): the AU logits, [B, K]. ``pixel_values``: normalised float [B, 3, H, W], or uint8
        [B, H, W, 3] images (normalised here, see :func:`normalize_images`)."""
        return self.latent(pixel_values).z_logits

    def forward(self, pixel_values: torch.Tensor, effects: str | None = None) -> ReasonerOutput:
        """``effects='batched'`` also returns every do(z_k = 0) through one head call (the logits are
        then its factual row); ``'loop'`` does the same with one call per AU (benchmarks only)."""
        lat = self.latent(pixel_values)
        z = lat.z
        if effects is None:
            return ReasonerOutput(z_logits=lat.z_logits, z=z, logits=lat.head(z), attention=lat.attention)
        if effects not in ("batched", "loop"):
            raise ValueError(f"effects must be None, 'batched' or 'loop', got {effects!r}")
        fn = intervention_effects if effects == "batched" else intervention_effects_loop
        eff = fn(lat.head, z)
        return ReasonerOutput(z_logits=lat.z_logits, z=z, logits=eff.logits, effects=eff, attention=lat.attention)


def normalize_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[B, H, W, 3]`` images → float ``[B, 3, H, W]`` normalised with ImageNet statistics.

    The permuted view is channels_last in memory, the layout convolutions run fastest in on a CPU;
    normalising the batch here (not per item in the DataLoader) moves 4x fewer bytes through it.
    """
    if images.dim() != 4 or images.shape[-1] != 3:
        raise ValueError(f"uint8 images must be [B, H, W, 3], got {tuple(images.shape)}")
    from facr.data.torch_data import MEAN, STD  # ImageNet statistics, defined once

    mean = 255.0 * torch.as_tensor(MEAN, device=images.device)
    inv_std = 1.0 / (255.0 * torch.as_tensor(STD, device=images.device))
    x = images.float()
    x.sub_(mean).mul_(inv_std)  # in place, broadcast over the trailing channel axis (fastest on a CPU)
    return x.permute(0, 3, 1, 2)


# ------------------------------------------------------------------ checkpoints
CHECKPOINT_FILES = ("model.safetensors", "config.json", "graph.json")


class CheckpointError(FacrError):
    """A checkpoint folder that is missing files or does not load."""


def save_reasoner(model: Reasoner, graph: AUGraph, path: str | os.PathLike) -> Path:
    """Write ``model.safetensors`` + ``config.json`` + ``graph.json`` into folder ``path``.

    The folder is written beside ``path`` and renamed into place, so a reader never sees a mix
    of old and new files and an interrupted save leaves the previous checkpoint intact.
    """
    from safetensors.torch import save_file

    from facr.utils import atomic_dir

    path = Path(path)
    with atomic_dir(path) as tmp:
        state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt", "facr": "reasoner"})
        save_config(model.config, tmp / "config.json")
        save_graph(graph, tmp / "graph.json")
    return path


def load_reasoner(path: str | os.PathLike, map_location: str = "cpu") -> tuple[Reasoner, AUGraph]:
    """Load a reasoner folder written by :func:`save_reasoner`; returns (model in eval mode, graph)."""
    import json

    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(path, "no such checkpoint folder")
    missing = [f for f in CHECKPOINT_FILES if not (path / f).exists()]
    if missing:
        raise CheckpointError(path, f"not a facr reasoner checkpoint: missing {', '.join(missing)}")
    try:
        raw = json.loads((path / "config.json").read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(path / "config.json", f"not valid JSON: {exc.msg} at line {exc.lineno}") from None
    config = from_dict(ReasonerConfig, raw, str(path / "config.json"))
    graph = load_graph(path / "graph.json")
    model = Reasoner(config)
    try:
        state = load_file(str(path / "model.safetensors"), device=map_location)
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(path / "model.safetensors", f"cannot read weights: {exc}") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshapen = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or misshapen:
        first = (misshapen or missing or unexpected)[0]
        raise CheckpointError(path / "model.safetensors",
                              f"weights do not fit config.json ({len(missing)} missing, {len(unexpected)} unexpected, "
                              f"{len(misshapen)} misshapen tensors, e.g. {first})")
    model.load_state_dict(state)
    return model.eval(), graph
