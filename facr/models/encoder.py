"""Image encoders f_enc built from transformers configs (ResNet, ViT), or loaded with from_pretrained.

torchvision does not import beside the CPU torch pin, so every backbone comes from transformers:
randomly initialised from ``ResNetConfig`` / ``ViTConfig``, or ``from_pretrained`` of a local
folder or hub id the user gives (e.g. ``microsoft/resnet-18`` on a machine that has it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from facr.config import check_range

ARCHS = {
    "resnet-18": dict(kind="resnet", depths=[2, 2, 2, 2], hidden_sizes=[64, 128, 256, 512], layer_type="basic"),
    "resnet-34": dict(kind="resnet", depths=[3, 4, 6, 3], hidden_sizes=[64, 128, 256, 512], layer_type="basic"),
    "resnet-50": dict(kind="resnet", depths=[3, 4, 6, 3], hidden_sizes=[256, 512, 1024, 2048],
                      layer_type="bottleneck"),
    "vit-tiny": dict(kind="vit", hidden_size=192, num_hidden_layers=12, num_attention_heads=3,
                     intermediate_size=768),
    "vit-small": dict(kind="vit", hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
                      intermediate_size=1536),
    # ResNet-10 at a quarter of the width (0.3 M parameters, ~10x faster than ResNet-18 on a CPU): the
    # synthetic benchmark's fast default, trained from scratch in minutes on 2 cores.
    "resnet-10-slim": dict(kind="resnet", depths=[1, 1, 1, 1], hidden_sizes=[16, 32, 64, 128], layer_type="basic",
                           embedding_size=16),
    # A few-thousand-parameter ResNet for tests and docs (facr.testing), not for results.
    "resnet-tiny": dict(kind="resnet", depths=[1, 1], hidden_sizes=[8, 16], layer_type="basic", embedding_size=8),
}


# Bounds a config (a YAML file, a checkpoint's config.json) must keep to, so that a typo or a hostile
# file is refused before anything is allocated. Generous: faces are 112–448 px in practice, and a
# ViT's attention grows with the square of its token count.
MAX_IMAGE_SIZE = 1024
MAX_PATCH_GRID = 64  # ViT patches per side (1024 px / 16 px patches)


@dataclass
class EncoderConfig:
    """Which f_enc: an ``arch`` from :data:`ARCHS`, optionally ``pretrained`` (local folder or hub id)."""

    arch: str = "resnet-18"
    pretrained: str | None = None
    image_size: int = 112
    patch_size: int = 16
    # Filled in when ``pretrained`` weights are loaded: the backbone's own transformers config, so a
    # saved facr checkpoint rebuilds the same network offline without the original folder or hub id.
    backbone_config: dict | None = None

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {', '.join(ARCHS)}, got {self.arch!r}")
        check_range("image_size", self.image_size, 16, MAX_IMAGE_SIZE)
        check_range("patch_size", self.patch_size, 1, self.image_size)
        if ARCHS[self.arch]["kind"] == "vit":
            if self.image_size % self.patch_size:
                raise ValueError(f"image_size ({self.image_size}) must be a multiple of "
                                 f"patch_size ({self.patch_size})")
            check_range("image_size / patch_size (ViT patches per side)", self.image_size // self.patch_size,
                        1, MAX_PATCH_GRID)


class Encoder(nn.Module):
    """``pixel_values`` [B, 3, H, W] → features [B, D] (and the last feature map for region maps)."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        spec = dict(ARCHS[config.arch])
        self.kind = spec.pop("kind")
        if self.kind == "resnet":
            from transformers import ResNetConfig, ResNetModel

            if config.backbone_config:
                self.backbone = ResNetModel(ResNetConfig.from_dict(config.backbone_config))
            elif config.pretrained:
                self.backbone = _from_pretrained(ResNetModel, config.pretrained, self.kind, config.arch)
                config.backbone_config = self.backbone.config.to_dict()
            else:
                self.backbone = ResNetModel(ResNetConfig(downsample_in_first_stage=False, **spec))
            self.dim = self.backbone.config.hidden_sizes[-1]
        else:
            from transformers import ViTConfig, ViTModel

            if config.backbone_config:
                self.backbone = ViTModel(ViTConfig.from_dict(config.backbone_config), add_pooling_layer=False)
            elif config.pretrained:
                self.backbone = _from_pretrained(ViTModel, config.pretrained, self.kind, config.arch,
                                                 add_pooling_layer=False)
                config.backbone_config = self.backbone.config.to_dict()
            else:
                self.backbone = ViTModel(
                    ViTConfig(image_size=config.image_size, patch_size=config.patch_size, **spec),
                    add_pooling_layer=False,
                )
            self.dim = self.backbone.config.hidden_size

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if self.kind == "resnet":
            return self.backbone(pixel_values=pixel_values).pooler_output.flatten(1)
        out = self.backbone(pixel_values=pixel_values, interpolate_pos_encoding=True)
        return out.last_hidden_state[:, 0]

    # ------------------------------------------------------------ for region maps
    @property
    def n_layers(self) -> int:
        """How many layers :meth:`trace` returns (ResNet stages, ViT blocks)."""
        if self.kind == "resnet":
            return len(self.backbone.encoder.stages)
        return len(self.backbone.layers)

    def trace(self, pixel_values: torch.Tensor, attentions: bool = False) -> "EncoderTrace":
        """The forward pass layer by layer, numerically the same as :meth:`forward`.

        ``layers[l]`` is the output of ResNet stage l (``A^l``, [B, C, h, w]) or of ViT block l
        ([B, 1 + N, D], before the final norm); ``pooled`` is what the AU layer reads. With
        ``attentions`` (ViT) the softmax attention of every block ([B, heads, T, T]) is kept in the
        autograd graph, for (gradient-weighted) attention rollout.
        """
        if self.kind == "resnet":
            h = self.backbone.embedder(pixel_values)
            layers = []
            for stage in self.backbone.encoder.stages:
                h = stage(h)
                layers.append(h)
            return EncoderTrace(layers, self.backbone.pooler(h).flatten(1), None)
        h = self.backbone.embeddings(pixel_values, interpolate_pos_encoding=True)
        layers, attn = [], []
        for layer in self.backbone.layers:
            h, w = _vit_block(layer, h)
            layers.append(h)
            attn.append(w)
        return EncoderTrace(layers, self.backbone.layernorm(h)[:, 0], attn if attentions else None)

    def resume(self, layer: int, hidden: torch.Tensor) -> "EncoderTrace":
        """The rest of the network from layer ``layer``'s output ``hidden`` on (what CE-FAM's channel
        masking needs): a trace whose ``layers`` are ``hidden`` and the later layers' outputs."""
        layers = [hidden]
        if self.kind == "resnet":
            for stage in self.backbone.encoder.stages[layer + 1:]:
                hidden = stage(hidden)
                layers.append(hidden)
            return EncoderTrace(layers, self.backbone.pooler(hidden).flatten(1), None)
        for block in self.backbone.layers[layer + 1:]:
            hidden, _ = _vit_block(block, hidden)
            layers.append(hidden)
        return EncoderTrace(layers, self.backbone.layernorm(hidden)[:, 0], None)

    def grid(self, hidden: torch.Tensor) -> torch.Tensor:
        """A layer's output as a spatial map [B, C, h, w] (ViT: the patch tokens, CLS dropped)."""
        if self.kind == "resnet":
            return hidden
        B, T, D = hidden.shape
        n = T - 1
        side = int(round(n ** 0.5))
        if side * side != n:
            raise ValueError(f"cannot lay {n} patch tokens out on a square grid")
        return hidden[:, 1:].transpose(1, 2).reshape(B, D, side, side)

    def feature_grid(self, trace: "EncoderTrace") -> torch.Tensor:
        """The last layer as a spatial map (ViT: after the final norm), for spatial concept heads."""
        last = trace.layers[-1]
        if self.kind == "resnet":
            return last
        return self.grid(self.backbone.layernorm(last))


def _from_pretrained(model_cls, name: str, kind: str, arch: str, **kwargs) -> nn.Module:
    """``model_cls.from_pretrained(name)`` for a local folder or hub id; one line naming ``name`` when
    it cannot be read, cannot be downloaded (offline), or holds another kind of network (transformers
    would load a ViT folder into a ResNet with random weights and only a warning)."""
    from huggingface_hub.constants import HF_HUB_OFFLINE
    from transformers import AutoConfig

    from facr.errors import FacrError

    try:
        model_type = AutoConfig.from_pretrained(name).model_type
        if model_type != kind:
            raise FacrError(name, f"is a {model_type} model; arch {arch} needs a {kind} model")
        return model_cls.from_pretrained(name, **kwargs)
    except (OSError, ValueError) as exc:
        if not os.path.exists(name):
            why = ("and hub downloads are off (HF_HUB_OFFLINE)" if HF_HUB_OFFLINE
                   else "and no hub model of that id could be downloaded")
            raise FacrError(name, f"could not be loaded: not a local folder, {why}; "
                                  "give the path of a downloaded model folder") from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FacrError(name, f"could not be loaded as a {kind} model: {first}") from None


@dataclass
class EncoderTrace:
    layers: list[torch.Tensor]
    pooled: torch.Tensor
    attentions: list[torch.Tensor] | None


def _vit_block(layer, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One ``ViTLayer`` written out so that its softmax attention is returned (whatever attention
    implementation the config picks); the arithmetic is the layer's own."""
    from transformers.models.vit.modeling_vit import eager_attention_forward

    x = layer.layernorm_before(h)
    att = layer.attention
    shape = (*x.shape[:-1], -1, att.head_dim)
    q = att.q_proj(x).view(shape).transpose(1, 2)
    k = att.k_proj(x).view(shape).transpose(1, 2)
    v = att.v_proj(x).view(shape).transpose(1, 2)
    out, weights = eager_attention_forward(att, q, k, v, None, scaling=att.scaling,
                                           dropout=att.attention_dropout if att.training else 0.0)
    h = layer.dropout(att.o_proj(out.reshape(*x.shape[:-1], -1))) + h
    h = layer.dropout(layer.mlp(layer.layernorm_after(h))) + h
    return h, weights
