"""The heads ``--head`` may name: each builds a trainable head on the frozen backbones' outputs.

The default, ``last-conv``, is EfficientNet-Lite's own top (its last ``tuned_blocks`` MBConv blocks and final
1x1 convolution), started from its pretrained weights and fine-tuned: the backbone then stops below those
layers and caches their input maps instead of pooled vectors. The other heads reshape the pooled features
of one or more frozen backbones.
"""

from __future__ import annotations

from collections.abc import Callable

from simtune.models.encoders.efficientnet_lite import VARIANTS
from simtune.models.heads import (
    EfficientNetLiteTopHead,
    EncoderHead,
    LinearHead,
    SkipConnectionHead,
    StackedProjectionHead,
)

LAST_CONV = "last-conv"
LAST_CONV_TUNED_BLOCKS = 2
# head -> (builder(input size, first backbone, tuned blocks), default learning rate)
HEADS: dict[str, tuple[Callable[[int, str, int], EncoderHead], float]] = {
    LAST_CONV: (
        lambda size, backbone, tuned_blocks: EfficientNetLiteTopHead(
            size,
            backbone,
            pooling="gem",
            residual=True,
            normalize=True,
            tuned_blocks=tuned_blocks,
        ),
        1e-2,
    ),
    "skip": (lambda size, backbone, tuned_blocks: SkipConnectionHead(size, normalize=True), 1e-2),
    "linear": (lambda size, backbone, tuned_blocks: LinearHead(size, normalize=True), 1e-3),
    "mlp": (
        lambda size, backbone, tuned_blocks: StackedProjectionHead(size, [2 * size, size], normalize=True),
        1e-3,
    ),
}


def supports_last_conv(backbones: list[str]) -> bool:
    """The last-conv head tunes the top of exactly one EfficientNet-Lite."""
    return len(backbones) == 1 and backbones[0] in VARIANTS
