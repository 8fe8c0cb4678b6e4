"""Encoders: raw objects -> embeddings. Built-ins import their backbone libraries only when constructed."""

from simtune.models.encoders.base import Encoder
from simtune.models.encoders.efficientnet_lite import EfficientNetLiteEncoder
from simtune.models.encoders.image_collate import ImageCollate
from simtune.models.encoders.torchvision_encoder import TorchvisionEncoder

__all__ = ["Encoder", "EfficientNetLiteEncoder", "ImageCollate", "TorchvisionEncoder"]
