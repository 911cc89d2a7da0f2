"""The Stage-1 reasoner: x → z = σ(f_enc(x)) ∈ (0,1)^K → emotion head → ŷ (paper Eq. 1).

One latent unit per AU (``config.aus``, the K order shared with the graph's sign matrix), one
logit per class (``config.classes``). The head is small on purpose (paper §3.3): the
counterfactual-faithfulness objective, not the architecture, decides which AUs it depends on.
A checkpoint is a folder: ``model.safetensors`` + ``config.json`` + ``graph.json`` — no pickle.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from facr import au as au_vocab
from facr.causal import Effects, intervention_effects, intervention_effects_loop
from facr.config import check_range, from_dict, save_config
from facr.errors import FacrError
from facr.graph import AUGraph, load_graph, save_graph
from facr.graph import validate as graph_rules
from facr.models.encoder import Encoder, EncoderConfig
from facr.models.heads import HEADS

# Bounds a reasoner config (and so a checkpoint's config.json) must keep to, checked before anything
# is allocated: a hand-edited or hostile ``head_hidden: 3000000000`` is one line, not an out-of-memory.
MAX_HEAD_HIDDEN = 65536
MAX_CONCEPT_EMBEDDING = 4096
MAX_CLASSES = 1000
MAX_PARAMETERS = 1_000_000_000  # the whole network (4 GB of float32); ViT-Huge has 632 M


def check_aus_classes(aus: list[str], classes: list[str]) -> list[str]:
    """The AU order (canonical, each once, at least one) and the class list (2 to MAX_CLASSES valid,
    distinct ids) of a latent and its head; returns the canonical AUs. ValueError names the field."""
    if not aus:
        raise ValueError("aus: the latent needs at least one AU")
    aus = [au_vocab.canonical(a) for a in aus]
    if len(set(aus)) != len(aus):
        raise ValueError(f"aus: duplicates in {aus}")
    if not 2 <= len(classes) <= MAX_CLASSES:
        raise ValueError(f"classes: need 2 to {MAX_CLASSES} classes, got {len(classes)}")
    for c in classes:
        problem = graph_rules.problem_class_id(c)
        if problem:
            raise ValueError(f"classes: {problem}")
    if len(set(classes)) != len(classes):
        raise ValueError(f"classes: duplicates in {classes}")
    return aus


@dataclass
class ReasonerConfig:
    """Architecture of a reasoner: encoder, AU latent order (K), class order (C), head."""

    aus: list[str]
    classes: list[str]
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    head: str = "mlp"  # mlp | linear | graph | agcm (AGCM's attention-guided concept head, facr.models.agcm)
    head_hidden: int = 64
    dropout: float = 0.0
    concept_embedding: int = 16  # head agcm: size of each AU's activated / inactivated embedding
    au_readout: str = "pool"  # pool | attention: how z reads the encoder (facr.models.readout)
    # head graph: G's edges {class: {AU: ±1}}, the head's wiring (facr.models.heads.GraphHead)
    edges: dict[str, dict[str, int]] | None = None

    def __post_init__(self):
        if isinstance(self.encoder, dict):
            self.encoder = EncoderConfig(**self.encoder)
        self.aus = check_aus_classes(self.aus, self.classes)
        if self.head not in HEADS.names():
            raise ValueError(f"head must be one of {', '.join(HEADS.names())}, got {self.head!r}")
        check_range("concept_embedding", self.concept_embedding, 1, MAX_CONCEPT_EMBEDDING)
        from facr.models.readout import check_readout

        check_readout(self.au_readout)
        if self.au_readout != "pool" and not HEADS[self.head].z_only:
            raise ValueError(f"au_readout {self.au_readout} needs a z-only head (mlp, linear or graph); "
                             f"head {self.head} reads the feature grid itself")
        from facr.models.heads import check_edges

        self.edges = check_edges(self.head, self.edges, self.aus, self.classes)
        check_range("head_hidden", self.head_hidden, 1, MAX_HEAD_HIDDEN)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


@dataclass
class ReasonerOutput:
    z_logits: torch.Tensor  # f_enc(x), [B, K]
    z: torch.Tensor  # σ(f_enc(x)), [B, K]
    logits: torch.Tensor  # ŷ = head(z), [B, C]
    effects: Effects | None = None  # ŷ under every do(z_k = 0), when asked for
    attention: torch.Tensor | None = None  # head agcm: the spatial concept attention â, [B, K, h, w]

    def head_rows(self, n: int) -> "ReasonerOutput":
        """The first ``n`` rows (a training batch forwarded together with its grounding pairs)."""
        eff = self.effects
        return ReasonerOutput(self.z_logits[:n], self.z[:n], self.logits[:n],
                              None if eff is None else Effects(eff.logits[:n], eff.cf_logits[:n], eff.value),
                              None if self.attention is None else self.attention[:n])


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
        for name, module in HEADS[config.head].modules(self.encoder.dim, K, C, config).items():
            setattr(self, name, module)  # to_au + head, or agcm's concepts + head

    @property
    def z_only(self) -> bool:
        """Whether ŷ is a function of z alone (mlp, linear), so a stored z can be intervened on
        without the image."""
        return HEADS[self.config.head].z_only

    def latent_head(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """The z → logits head for callers that hold z without the image (the rationale audit,
        the verbalizer's evaluation). ``agcm`` has none: its logits also read the image's concept
        embeddings."""
        if not self.z_only:
            raise FacrError(None, "head agcm: its logits read the image's concept embeddings as well as z, so an "
                                  "intervention needs the image (use Reasoner.latent(pixels).head); train the "
                                  "verbalizer and its audits on an mlp, linear or graph reasoner")
        return self.head

    def _pixels(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return normalize_images(pixel_values) if pixel_values.dtype == torch.uint8 else pixel_values

    def latent(self, pixel_values: torch.Tensor) -> Latent:
        """z's logits and the bound head for a batch (uint8 or normalised pixels)."""
        pixel_values = self._pixels(pixel_values)
        if self.z_only and self.config.au_readout == "pool":
            return Latent(self.to_au(self.encoder(pixel_values)), self.head)
        return self.latent_from_trace(self.encoder.trace(pixel_values))

    def latent_from_trace(self, trace) -> Latent:
        """:meth:`latent` from an :class:`~facr.models.encoder.EncoderTrace` (region maps need the
        layers' activations in the autograd graph)."""
        if self.z_only:
            if self.config.au_readout == "pool":
                return Latent(self.to_au(trace.pooled), self.head)
            z_logits, attention = self.to_au(self.encoder.feature_grid(trace))
            return Latent(z_logits, self.head, attention)
        c = self.concepts(self.encoder.feature_grid(trace))
        return Latent(c.z_logits, self.head.bind(c.positive, c.negative), c.attention)

    def encode(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """f_enc(x): the AU logits, [B, K]. ``pixel_values``: normalised float [B, 3, H, W], or uint8
        [B, H, W, 3] images (normalised here, see :func:`normalize_images`)."""
        return self.latent(pixel_values).z_logits

    def forward(self, pixel_values: torch.Tensor, effects: str | None = None,
                detach_z: bool = False) -> ReasonerOutput:
        """``effects='batched'`` also returns every do(z_k = 0) through one head call (the logits are
        then its factual row); ``'loop'`` does the same with one call per AU (benchmarks only).
        ``detach_z``: the head reads z without a gradient back into the encoder (training: see
        ``LossWeights.detach_z``); the values are the same."""
        lat = self.latent(pixel_values)
        z = lat.z
        z_head = z.detach() if detach_z else z
        if effects is None:
            return ReasonerOutput(z_logits=lat.z_logits, z=z, logits=lat.head(z_head), attention=lat.attention)
        if effects not in ("batched", "loop"):
            raise ValueError(f"effects must be None, 'batched' or 'loop', got {effects!r}")
        fn = intervention_effects if effects == "batched" else intervention_effects_loop
        eff = fn(lat.head, z_head)
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


def save_reasoner(model: Reasoner, graph: AUGraph, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``model.safetensors`` + ``config.json`` + ``graph.json`` into folder ``path``.

    The folder is written beside ``path`` and renamed into place, so a reader never sees a mix
    of old and new files and an interrupted save leaves the previous checkpoint intact. An existing
    ``path`` is replaced only when it is a reasoner checkpoint facr wrote and ``overwrite`` is set
    (:func:`facr.outputs.output_dir`).
    """
    from safetensors.torch import save_file

    from facr.outputs import output_dir

    path = Path(path)
    with output_dir(path, "reasoner", overwrite=overwrite) as tmp:
        state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / "model.safetensors"), metadata=checkpoint_metadata(model.config))
        save_config(model.config, tmp / "config.json")
        save_graph(graph, tmp / "graph.json")
    return path


def checkpoint_metadata(config, kind: str = "reasoner") -> dict[str, str]:
    """The safetensors metadata of a reasoner's (``kind``: or an AU head's) weights: the AU and class
    order they were trained with, so that :func:`load_reasoner` refuses a ``config.json`` edited afterwards
    (a reordered ``classes`` list fits every tensor shape and would relabel each prediction silently)."""
    import json

    return {"format": "pt", "facr": kind, "aus": json.dumps(config.aus), "classes": json.dumps(config.classes)}


def read_json_file(path: Path) -> dict:
    """A checkpoint's JSON mapping (``config.json``); every problem is a :class:`CheckpointError`."""
    from facr.utils import loads_json

    try:
        doc = loads_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(path, f"cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    except ValueError as exc:
        raise CheckpointError(path, str(exc)) from None
    if not isinstance(doc, dict):
        raise CheckpointError(path, f"expected a JSON object, got {type(doc).__name__}")
    return doc


def read_weights(path: Path, device: str = "cpu") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and metadata of a safetensors file, every floating tensor checked finite.

    A NaN or infinite weight makes every prediction NaN (argmax then picks class 0); it is refused
    here, naming the tensor, rather than discovered as nonsense downstream.
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device=device) as f:
            metadata = dict(f.metadata() or {})
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(path, f"cannot read weights: {exc}") from None
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise CheckpointError(path, f"tensor {name} has {bad} NaN or infinite value(s) of {tensor.numel()}")
    return state, metadata


def parameter_count(config: ReasonerConfig) -> int:
    """How many numbers the network ``config`` describes, counted on the meta device (nothing is
    allocated). Raises ``ValueError`` when the config does not build a network."""
    if config.encoder.pretrained and not config.encoder.backbone_config:
        config = replace(config, encoder=replace(config.encoder, pretrained=None))  # count the arch's own size
    try:
        with torch.device("meta"):
            model = Reasoner(config)
    except Exception as exc:  # noqa: BLE001 - an untrusted dict into transformers: its validation errors derive
        # from Exception itself (huggingface_hub's StrictDataclassError), others are Type/Value/RuntimeError
        why = " ".join(str(exc).split())
        raise ValueError(f"encoder.backbone_config does not build a {config.encoder.arch} network: "
                         f"{why[:200] or type(exc).__name__}") from None
    return sum(t.numel() for t in [*model.parameters(), *model.buffers()])


def check_order(metadata: dict[str, str], config, path: Path) -> None:
    """The AU and class order of ``config.json`` must be the one the weights were saved with
    (checkpoints written before the order was recorded carry none and are not checked)."""
    import json

    for name in ("aus", "classes"):
        if name not in metadata:
            continue
        try:
            saved = json.loads(metadata[name])
        except ValueError:
            raise CheckpointError(path / "model.safetensors", f"metadata {name!r} is not a JSON list") from None
        if saved != getattr(config, name):
            raise CheckpointError(path / "config.json",
                                  f"{name} {getattr(config, name)} differ from the {name} the weights were saved with "
                                  f"{saved} (a reordered list would relabel every prediction)")


def load_reasoner(path: str | os.PathLike, map_location: str = "cpu") -> tuple[Reasoner, AUGraph]:
    """Load a reasoner folder written by :func:`save_reasoner`; returns (model in eval mode, graph).

    Before anything is allocated, ``config.json`` is checked field by field (types and bounds, see
    :class:`ReasonerConfig`) and the network it describes must stay under :data:`MAX_PARAMETERS`;
    the weights must be finite, fit the config's shapes, and carry the config's AU and class order.
    """
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(path, "no such checkpoint folder")
    missing = [f for f in CHECKPOINT_FILES if not (path / f).exists()]
    if missing:
        raise CheckpointError(path, f"not a facr reasoner checkpoint: missing {', '.join(missing)}")
    config = from_dict(ReasonerConfig, read_json_file(path / "config.json"), str(path / "config.json"))
    graph = load_graph(path / "graph.json")
    try:
        n = parameter_count(config)
    except ValueError as exc:
        raise CheckpointError(path / "config.json", str(exc)) from None
    if n > MAX_PARAMETERS:
        raise CheckpointError(path / "config.json", f"describes a network of {n:,} parameters, more than facr loads "
                                                    f"({MAX_PARAMETERS:,})")
    state, metadata = read_weights(path / "model.safetensors", map_location)
    check_order(metadata, config, path)
    model = Reasoner(config)
    load_checked(model, state, path / "model.safetensors")
    return model.eval(), graph


def load_checked(model: nn.Module, state: dict[str, torch.Tensor], file: Path) -> None:
    """Load ``state`` into ``model`` after checking every tensor is there with the shape config.json
    gives it (one :class:`CheckpointError` naming ``file`` and the first mismatch, never torch's list)."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshapen = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or misshapen:
        first = (misshapen or missing or unexpected)[0]
        example = (f"{first} is {list(state[first].shape)} in the file, {list(expected[first].shape)} by config.json"
                   if misshapen else first)
        raise CheckpointError(file, f"weights do not fit config.json ({len(missing)} missing, {len(unexpected)} "
                                    f"unexpected, {len(misshapen)} misshapen tensors, e.g. {example})")
    model.load_state_dict(state)
