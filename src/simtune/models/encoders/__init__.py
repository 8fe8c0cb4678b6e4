"""Encoders: raw objects -> embeddings. Which backbone libraries are imported when: ``simtune.models.dependencies``."""

from simtune.models.encoders.base import Encoder
from simtune.models.encoders.efficientnet_lite import EfficientNetLiteEncoder
from simtune.models.encoders.huggingface_vision_encoder import HuggingFaceVisionEncoder
from simtune.models.encoders.image_collate import ImageCollate
from simtune.models.encoders.torchvision_encoder import TorchvisionEncoder
from simtune.models.encoders.transformers_encoder import MINILM_L6_V2, TransformersTextEncoder, minilm_l6_v2_path

__all__ = [
    "Encoder",
    "EfficientNetLiteEncoder",
    "HuggingFaceVisionEncoder",
    "ImageCollate",
    "MINILM_L6_V2",
    "TorchvisionEncoder",
    "TransformersTextEncoder",
    "minilm_l6_v2_path",
]
