"""``--backbone`` names -> frozen image encoders: ``lite0|lite1|lite2``, ``torchvision:<model name>`` or
``hf:<folder or hub id>`` (a Hugging Face vision model: CLIP/SigLIP image tower, DINOv2, ViT)."""

from __future__ import annotations

import re

from simtune.models.encoders import EfficientNetLiteEncoder, Encoder, HuggingFaceVisionEncoder, TorchvisionEncoder
from simtune.models.encoders.efficientnet_lite import VARIANTS

TORCHVISION_PREFIX = "torchvision:"
HF_PREFIX = "hf:"


def encoder_name(backbone: str) -> str:
    """The backbone's name inside the model (a folder name): ``torchvision:resnet152`` -> ``torchvision-resnet152``,
    ``hf:/models/dinov2-small/`` -> ``hf-dinov2-small``."""
    if backbone.startswith(HF_PREFIX):
        backbone = HF_PREFIX + backbone[len(HF_PREFIX) :].rstrip("/").rsplit("/", 1)[-1]
    return re.sub(r"[^A-Za-z0-9_.-]", "-", backbone)


def build_backbone(backbone: str, feature_maps: bool = False, tuned_blocks: int = 0) -> Encoder:
    """A frozen, pretrained encoder; torchvision weights come from the local torch hub cache and Hugging Face
    models from a folder or the local Hugging Face cache, never the network.

    ``feature_maps``: an EfficientNet-Lite stops before its final convolution (for the ``last-conv`` head),
    and ``tuned_blocks`` blocks earlier still when that head tunes them.
    """
    if backbone in VARIANTS:
        if feature_maps:
            return EfficientNetLiteEncoder(backbone, output="blocks", tuned_blocks=tuned_blocks)
        return EfficientNetLiteEncoder(backbone, output="pooled")
    if feature_maps:
        raise ValueError(
            f"only EfficientNet-Lite backbones ({', '.join(sorted(VARIANTS))}) give feature maps, not {backbone!r}"
        )
    if backbone.startswith(TORCHVISION_PREFIX) and len(backbone) > len(TORCHVISION_PREFIX):
        return TorchvisionEncoder(backbone[len(TORCHVISION_PREFIX) :], weights="DEFAULT")
    if backbone.startswith(HF_PREFIX) and len(backbone) > len(HF_PREFIX):
        return HuggingFaceVisionEncoder(backbone[len(HF_PREFIX) :])
    raise ValueError(
        f"unknown backbone {backbone!r}: expected one of {', '.join(sorted(VARIANTS))}, "
        f"{TORCHVISION_PREFIX}<torchvision model name> (e.g. {TORCHVISION_PREFIX}resnet152) "
        f"or {HF_PREFIX}<folder or Hugging Face id in the local cache> (e.g. {HF_PREFIX}facebook/dinov2-small)"
    )


def build_backbones(backbones: list[str], feature_maps: bool = False, tuned_blocks: int = 0) -> dict[str, Encoder]:
    """One encoder per distinct name; the model concatenates their embeddings (in sorted-name order)."""
    if not backbones:
        raise ValueError("name at least one backbone")
    names = [encoder_name(b) for b in backbones]
    if len(set(names)) != len(names):
        raise ValueError(f"backbones must be distinct, got {backbones}")
    return {name: build_backbone(backbone, feature_maps, tuned_blocks) for name, backbone in zip(names, backbones)}
