from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from simtune.models.heads.base import EncoderHead
from simtune.models.heads.skip_connection_head import SkipConnectionHead

POOLINGS = ("avg", "gem")
INITIAL_GEM_POWER = 3.0


class EfficientNetLiteTopHead(EncoderHead):
    """EfficientNet-Lite's final 1x1 convolution (+ batch norm, folded in) + ReLU6 + global pooling,
    as a trainable head over an ``EfficientNetLiteEncoder(output="blocks")``.

    With ``pretrained=True`` and ``pooling="avg"`` it starts as exactly the frozen network's pooled
    features; training then tunes the last convolution instead of only reshaping its pooled output,
    which is far more expressive, while the encoder below stays frozen and cacheable. Input rows are
    H x W x C feature maps flattened in that order. ``pooling="gem"`` is generalised-mean pooling
    with a learned power (starts at 3).
    """

    def __init__(
        self,
        input_embedding_size: int,
        variant: str = "lite0",
        pooling: str = "avg",
        residual: bool = False,
        pretrained: bool = True,
        dropout: float = 0.0,
        normalize: bool = False,
    ) -> None:
        super().__init__(input_embedding_size, dropout=dropout, normalize=normalize)
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; expected one of {POOLINGS}")
        from efficientnet_lite_pytorch import EfficientNet

        from simtune.models.encoders.efficientnet_lite import VARIANTS, _pretrained_state_dict

        if variant not in VARIANTS:
            raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; expected one of {sorted(VARIANTS)}")
        network = EfficientNet.from_name(f"efficientnet-{variant}")
        conv, norm = network._conv_head, network._bn1
        if input_embedding_size % conv.in_channels:
            raise ValueError(
                f"input_embedding_size={input_embedding_size} is not a whole number of {conv.in_channels}-channel "
                f"positions: EfficientNetLiteTopHead({variant!r}) expects EfficientNetLiteEncoder({variant!r}, "
                'output="blocks") features'
            )
        if pretrained:
            state = _pretrained_state_dict(variant)
            conv.load_state_dict({"weight": state["_conv_head.weight"]})
            norm.load_state_dict({k[len("_bn1."):]: v for k, v in state.items() if k.startswith("_bn1.")})
        self.variant, self.pooling = variant, pooling
        self.channels = conv.in_channels
        self.conv = nn.Linear(conv.in_channels, conv.out_channels)  # a 1x1 convolution over channels-last rows
        with torch.no_grad():
            scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
            self.conv.weight.copy_(conv.weight.flatten(1) * scale[:, None])
            self.conv.bias.copy_(norm.bias - norm.running_mean * scale)
        self.gem_power = nn.Parameter(torch.tensor(INITIAL_GEM_POWER)) if pooling == "gem" else None
        self.residual = SkipConnectionHead(conv.out_channels) if residual else None

    def pretrained_parameters(self) -> list[nn.Parameter]:
        """The convolution's weights: pretrained, so usually tuned at a lower learning rate than the rest."""
        return list(self.conv.parameters())

    @property
    def output_size(self) -> int:
        return self.conv.out_features

    def transform(self, embeddings: Tensor) -> Tensor:
        # (B, H*W*C) -> (B, H*W, C) without naming B, so a traced graph (ONNX) keeps a dynamic batch.
        positions = embeddings.unflatten(-1, (-1, self.channels))
        activations = F.relu6(self.conv(positions))
        if self.gem_power is None:
            pooled = activations.mean(dim=1)
        else:
            pooled = activations.clamp(min=1e-6).pow(self.gem_power).mean(dim=1).pow(1.0 / self.gem_power)
        return pooled if self.residual is None else self.residual(pooled)

    def get_config(self) -> dict[str, Any]:
        residual = self.residual is not None
        return {**super().get_config(), "variant": self.variant, "pooling": self.pooling, "residual": residual}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "EfficientNetLiteTopHead":
        return cls(**config, pretrained=False)
