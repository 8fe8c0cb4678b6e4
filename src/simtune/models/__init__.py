"""Servable models: encoders + head, save/load without pickle, ``encode`` for inference.

Importing this package needs only torch, safetensors and numpy (never Lightning).
"""

from simtune.models.encoders import Encoder
from simtune.models.heads import EncoderHead
from simtune.models.serialization import ModelFileError
from simtune.models.similarity_model import SimilarityModel

__all__ = ["Encoder", "EncoderHead", "ModelFileError", "SimilarityModel"]
