"""The model a run without training indexes with: the pretrained backbone, served as the tuned default is.

For an EfficientNet-Lite that is the tuned default's architecture before any training: the encoder stops
before the final convolution and encodes each image and its mirror (``mirror=True``); the head is the
network's own final convolution with average pooling (``EfficientNetLiteTopHead(pretrained=True)``),
which averages the two views' normalised embeddings. So the pretrained model embeds exactly as the
network's pooled features do, flip-averaged. Other backbones give their pooled features as they are.
"""

from __future__ import annotations

from simtune.apps.images.run.backbones import build_backbone, encoder_name
from simtune.models import SimilarityModel
from simtune.models.encoders import EfficientNetLiteEncoder
from simtune.models.encoders.efficientnet_lite import VARIANTS
from simtune.models.heads import EfficientNetLiteTopHead, EmptyHead

DEFAULT_BACKBONE = "lite0"


def pretrained_model(backbone: str = DEFAULT_BACKBONE) -> SimilarityModel:
    """An untrained, servable model on ``backbone`` (``lite0|lite1|lite2`` or ``torchvision:<name>``)."""
    if backbone in VARIANTS:
        encoder = EfficientNetLiteEncoder(backbone, output="blocks", mirror=True)
        head = EfficientNetLiteTopHead(encoder.embedding_size, backbone, pooling="avg", normalize=True, views=2)
    else:
        encoder = build_backbone(backbone)
        head = EmptyHead(encoder.embedding_size)
    return SimilarityModel({encoder_name(backbone): encoder}, head)
