"""A tiny importable Encoder for tests: BatchNorm and dropout make mode pinning observable."""

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from simtune.models import Encoder, register_class


@register_class  # what a user does once for their own class, so that saved models naming it load
class ToyEncoder(Encoder):
    """``(B, 3, H, W)`` tensors -> ``(B, size)``."""

    def __init__(self, size: int = 4, trainable: bool = False) -> None:
        super().__init__()
        self.size = size
        self._trainable = trainable
        self.layers = nn.Sequential(
            nn.Conv2d(3, size, 3),
            nn.BatchNorm2d(size),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.requires_grad_(trainable)

    @property
    def trainable(self) -> bool:
        return self._trainable

    @property
    def embedding_size(self) -> int:
        return self.size

    def forward(self, images: Tensor) -> Tensor:
        return self.layers(images)

    def get_config(self) -> dict[str, Any]:
        return {"size": self.size, "trainable": self.trainable}

    def get_collate_fn(self) -> Callable[[list[Tensor]], Tensor]:
        return torch.stack
