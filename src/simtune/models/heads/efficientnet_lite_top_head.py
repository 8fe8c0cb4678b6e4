from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from simtune.functional.pooling import generalised_mean_pool
from simtune.models.heads.base import EncoderHead
from simtune.models.heads.folded_mbconv_block import FoldedMBConvBlock, fold_batch_norm
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

    ``tuned_blocks=N`` also tunes the network's last N MBConv blocks (batch norms folded, so no batch
    statistics), over an ``EfficientNetLiteEncoder(output="blocks", tuned_blocks=N)``: deeper tuning,
    still on cached maps (the input of Lite0's last block, 7x7x192, is even smaller than its output).

    ``views=2`` reads an ``EfficientNetLiteEncoder(mirror=True)``'s [image, mirror] maps and averages the
    two views' embeddings (each L2-normalised first when ``normalize``): test-time flip averaging with
    the same weights, so a head trained on single views serves flip-averaged by changing only ``views``.
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
        tuned_blocks: int = 0,
        views: int = 1,
    ) -> None:
        super().__init__(input_embedding_size, dropout=dropout, normalize=normalize)
        if not isinstance(views, int) or views < 1:
            raise ValueError(f"views must be an int >= 1, got {views!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; expected one of {POOLINGS}")
        from simtune.models.dependencies import efficientnet_lite
        from simtune.models.encoders.efficientnet_lite import VARIANTS, _pretrained_state_dict, tuned_block_keys

        if variant not in VARIANTS:
            raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; expected one of {sorted(VARIANTS)}")
        if not isinstance(tuned_blocks, int) or tuned_blocks < 0:
            raise ValueError(f"tuned_blocks must be an int >= 0, got {tuned_blocks!r}")
        block_keys = tuned_block_keys(variant, tuned_blocks)
        network = efficientnet_lite().EfficientNet.from_name(f"efficientnet-{variant}")
        conv, norm = network._conv_head, network._bn1
        blocks = list(network._blocks)[len(network._blocks) - tuned_blocks :]
        channels = blocks[0]._block_args.input_filters if blocks else conv.in_channels
        blocks_note = f", tuned_blocks={tuned_blocks}" if tuned_blocks else ""
        view_size = input_embedding_size // views
        if input_embedding_size % views or view_size % channels or not _is_square(view_size // channels):
            raise ValueError(
                f"input_embedding_size={input_embedding_size} is not {views} square map(s) of "
                f"{channels}-channel positions: "
                f"EfficientNetLiteTopHead({variant!r}{blocks_note}) expects EfficientNetLiteEncoder({variant!r}, "
                f'output="blocks"{blocks_note}) features'
            )
        if pretrained:
            state = _pretrained_state_dict(variant)
            conv.load_state_dict({"weight": state["_conv_head.weight"]})
            norm.load_state_dict({k[len("_bn1.") :]: v for k, v in state.items() if k.startswith("_bn1.")})
            for key, block in zip(block_keys, blocks):
                block.load_state_dict({k[len(key) :]: v for k, v in state.items() if k.startswith(key)})
        self.variant, self.pooling, self.tuned_blocks, self.views = variant, pooling, tuned_blocks, views
        self.channels = channels
        self.positions = view_size // channels
        side = int(round(self.positions**0.5))
        self.blocks = nn.ModuleList([FoldedMBConvBlock(block.eval(), side) for block in blocks])
        self.conv = nn.Linear(conv.in_channels, conv.out_channels)  # a 1x1 convolution over channels-last rows
        with torch.no_grad():
            weight, bias = fold_batch_norm(conv.weight.flatten(1), norm)
            self.conv.weight.copy_(weight)
            self.conv.bias.copy_(bias)
        self.gem_power = nn.Parameter(torch.tensor(INITIAL_GEM_POWER)) if pooling == "gem" else None
        self.residual = SkipConnectionHead(conv.out_channels) if residual else None

    def pretrained_parameters(self) -> list[nn.Parameter]:
        """The tuned blocks' and the convolution's weights: pretrained, so usually tuned at a lower learning
        rate than the rest."""
        return list(self.blocks.parameters()) + list(self.conv.parameters())

    def with_views(self, views: int) -> "EfficientNetLiteTopHead":
        """The same head (a copy of its weights) reading ``views`` views per row."""
        size = self.input_embedding_size // self.views * views
        head = type(self).from_config({**self.get_config(), "input_embedding_size": size, "views": views})
        head.load_state_dict(self.state_dict())
        return head.train(self.training)

    @property
    def output_size(self) -> int:
        return self.conv.out_features

    def transform(self, embeddings: Tensor) -> Tensor:
        positions = embeddings.reshape(-1, self.positions, self.channels)  # a dynamic batch when exported
        for block in self.blocks:
            positions = block(positions)
        activations = F.relu6(self.conv(positions))
        if self.gem_power is None:
            pooled = activations.mean(dim=1)
        else:
            pooled = generalised_mean_pool(activations, self.gem_power)
        embeddings = pooled if self.residual is None else self.residual(pooled)
        if self.views == 1:
            return embeddings
        if self.normalize:
            embeddings = F.normalize(embeddings, dim=-1)
        return embeddings.reshape(-1, self.views, embeddings.shape[-1]).mean(dim=1)

    def get_config(self) -> dict[str, Any]:
        residual = self.residual is not None
        config = {**super().get_config(), "variant": self.variant, "pooling": self.pooling, "residual": residual}
        config |= {"tuned_blocks": self.tuned_blocks} if self.tuned_blocks else {}
        return config | ({"views": self.views} if self.views > 1 else {})

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "EfficientNetLiteTopHead":
        return cls(**config, pretrained=False)


def _is_square(number: int) -> bool:
    return int(round(number**0.5)) ** 2 == number
