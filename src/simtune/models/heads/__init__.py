"""Heads: the trainable layer(s) on top of the encoders, one per file, each saved as JSON + safetensors."""

from simtune.models.heads.base import EncoderHead
from simtune.models.heads.efficientnet_lite_top_head import EfficientNetLiteTopHead
from simtune.models.heads.empty_head import EmptyHead
from simtune.models.heads.gated_head import GatedHead
from simtune.models.heads.linear_head import LinearHead
from simtune.models.heads.sequential_head import SequentialHead
from simtune.models.heads.skip_connection_head import SkipConnectionHead
from simtune.models.heads.stacked_projection_head import StackedProjectionHead
from simtune.models.heads.widening_head import WideningHead

__all__ = [
    "EfficientNetLiteTopHead",
    "EncoderHead",
    "EmptyHead",
    "GatedHead",
    "LinearHead",
    "SequentialHead",
    "SkipConnectionHead",
    "StackedProjectionHead",
    "WideningHead",
]
