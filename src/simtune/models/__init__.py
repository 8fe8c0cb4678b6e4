"""Servable models: encoders + head, save/load without pickle, ``encode`` for inference.

Importing this package needs only torch, safetensors and numpy (never Lightning). Loading a model
rebuilds only simtune's built-in classes and the user classes allowed with ``trusted_classes=`` or
:func:`register_class`; it never imports a module because a saved file names it.
"""

from simtune.models.encoders import Encoder
from simtune.models.errors import ModelFileError, OnnxExportError, UntrustedClassError
from simtune.models.heads import EncoderHead
from simtune.models.registry import register_class
from simtune.models.similarity_model import SimilarityModel

__all__ = [
    "Encoder",
    "EncoderHead",
    "ModelFileError",
    "OnnxExportError",
    "SimilarityModel",
    "UntrustedClassError",
    "register_class",
]
