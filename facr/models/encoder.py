"""Image encoders f_enc built from transformers configs (ResNet, ViT), or loaded with from_pretrained.

torchvision does not import beside the CPU torch pin, so every backbone comes from transformers:
randomly initialised from ``ResNetConfig`` / ``ViTConfig``, or ``from_pretrained`` of a local
folder or hub id the user gives (e.g. ``microsoft/resnet-18`` on a machine that has it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

ARCHS = {
    "resnet-18": dict(kind="resnet", depths=[2, 2, 2, 2], hidden_sizes=[64, 128, 256, 512], layer_type="basic"),
    "resnet-34": dict(kind="resnet", depths=[3, 4, 6, 3], hidden_sizes=[64, 128, 256, 512], layer_type="basic"),
    "resnet-50": dict(kind="resnet", depths=[3, 4, 6, 3], hidden_sizes=[256, 512, 1024, 2048], layer_type="bottleneck"),
    "vit-tiny": dict(kind="vit", hidden_size=192, num_hidden_layers=12, num_attention_heads=3, intermediate_size=768),
    "vit-small": dict(kind="vit", hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536),
    # ResNet-10 at a quarter of the width (0.3 M parameters, ~10x faster than ResNet-18 on a CPU): the
    # synthetic benchmark's fast default, trained from scratch in minutes on 2 cores.
    "resnet-10-slim": dict(kind="resnet", depths=[1, 1, 1, 1], hidden_sizes=[16, 32, 64, 128], layer_type="basic",
                           embedding_size=16),
    # A few-thousand-parameter ResNet for tests and docs (facr.testing), not for results.
    "resnet-tiny": dict(kind="resnet", depths=[1, 1], hidden_sizes=[8, 16], layer_type="basic", embedding_size=8),
}


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
        if self.image_size < 16:
            raise ValueError(f"image_size must be >= 16, got {self.image_size}")
        if ARCHS[self.arch]["kind"] == "vit" and self.image_size % self.patch_size:
            raise ValueError(f"image_size ({self.image_size}) must be a multiple of patch_size ({self.patch_size})")


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
                self.backbone = ResNetModel.from_pretrained(config.pretrained)
                config.backbone_config = self.backbone.config.to_dict()
            else:
                self.backbone = ResNetModel(ResNetConfig(downsample_in_first_stage=False, **spec))
            self.dim = self.backbone.config.hidden_sizes[-1]
        else:
            from transformers import ViTConfig, ViTModel

            if config.backbone_config:
                self.backbone = ViTModel(ViTConfig.from_dict(config.backbone_config), add_pooling_layer=False)
            elif config.pretrained:
                self.backbone = ViTModel.from_pretrained(config.pretrained, add_pooling_layer=False)
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
