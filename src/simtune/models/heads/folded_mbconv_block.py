"""One pretrained EfficientNet-Lite MBConv block with its batch norms folded into the convolutions."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def fold_batch_norm(weight: Tensor, norm: nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    """Convolution weight (out, ...) + eval-mode batch norm -> the equivalent weight and bias."""
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    return weight * scale.reshape(-1, *([1] * (weight.dim() - 1))), norm.bias - norm.running_mean * scale


class FoldedMBConvBlock(nn.Module):
    """An inverted-residual block (1x1 expand, depthwise k x k, 1x1 project, identity skip) on
    channels-last rows ``(B, side * side, C)``, built from a pretrained ``MBConvBlock``.

    Folding the batch norms means no batch statistics: the block computes exactly what the frozen
    network computes, and tuning it on small batches of cached features cannot drift its statistics.
    Only stride-1 blocks without squeeze-excitation (all of EfficientNet-Lite's last stage) qualify:
    their "same" padding is symmetric, so a plain padded convolution reproduces them.
    """

    def __init__(self, block: nn.Module, side: int) -> None:
        super().__init__()
        args = block._block_args
        depthwise = block._depthwise_conv
        if tuple(depthwise.stride) != (1, 1) or block.has_se or depthwise.kernel_size[0] % 2 == 0:
            raise ValueError(
                f"only stride-1, odd-kernel MBConv blocks without squeeze-excitation can be folded; this one has "
                f"stride {tuple(depthwise.stride)}, kernel {tuple(depthwise.kernel_size)}, se={block.has_se}"
            )
        self.side = side
        self.in_channels, self.out_channels = args.input_filters, args.output_filters
        middle = depthwise.in_channels
        self.expand = nn.Linear(args.input_filters, middle) if args.expand_ratio != 1 else None
        kernel = depthwise.kernel_size[0]
        self.depthwise = nn.Conv2d(middle, middle, kernel, padding=kernel // 2, groups=middle)
        self.project = nn.Linear(middle, args.output_filters)
        self.skip = args.id_skip and args.input_filters == args.output_filters
        with torch.no_grad():
            if self.expand is not None:
                weight, bias = fold_batch_norm(block._expand_conv.weight.flatten(1), block._bn0)
                self.expand.weight.copy_(weight)
                self.expand.bias.copy_(bias)
            weight, bias = fold_batch_norm(depthwise.weight, block._bn1)
            self.depthwise.weight.copy_(weight)
            self.depthwise.bias.copy_(bias)
            weight, bias = fold_batch_norm(block._project_conv.weight.flatten(1), block._bn2)
            self.project.weight.copy_(weight)
            self.project.bias.copy_(bias)

    def forward(self, rows: Tensor) -> Tensor:
        x = F.relu6(self.expand(rows)) if self.expand is not None else rows
        channels = x.shape[-1]
        # (B, side*side, C) -> (B, C, side, side) with channels-last strides: no copy, fast depthwise kernels
        maps = x.reshape(-1, self.side, self.side, channels).permute(0, 3, 1, 2)
        x = F.relu6(self.depthwise(maps)).permute(0, 2, 3, 1).reshape(-1, self.side * self.side, channels)
        x = self.project(x)
        return x + rows if self.skip else x
