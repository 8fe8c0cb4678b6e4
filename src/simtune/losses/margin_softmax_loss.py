"""The shared shape of ArcFace and CosFace: learned class weights, a margin on the true class, a scale."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from simtune.losses._checks import check_against_parameters, check_group_batch, check_positive
from simtune.losses.base import GroupLoss


class MarginSoftmaxLoss(GroupLoss):
    """Owns one weight vector per class (``weight``, shape (num_groups, embedding_size)), listed in
    ``trainable_parameters`` so the optimizer learns them with the model. Geometry is angular, so there
    is no distance choice. Subclasses set ``loss_fn`` and validate ``margin`` in ``check_margin``."""

    loss_fn: Callable[[Tensor, Tensor, Tensor, float, float], Tensor]

    def __init__(self, num_groups: int, embedding_size: int, margin: float, scale: float):
        super().__init__(distance=None)
        check_positive("num_groups", num_groups)
        check_positive("embedding_size", embedding_size)
        self.check_margin(margin)
        if scale <= 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        self.num_groups, self.embedding_size = num_groups, embedding_size
        self.margin, self.scale = margin, scale
        self.weight = nn.Parameter(torch.randn(num_groups, embedding_size))

    def check_margin(self, margin: float) -> None:
        """Raise ValueError for a margin outside this loss's meaningful range."""

    def forward(self, embeddings: Tensor, groups: Tensor) -> Tensor:
        check_group_batch(embeddings, groups)
        check_against_parameters(embeddings, groups, self.num_groups, self.embedding_size, type(self).__name__)
        return type(self).loss_fn(embeddings, self.weight, groups, self.margin, self.scale)

    def get_config(self) -> dict[str, Any]:
        return {
            "num_groups": self.num_groups,
            "embedding_size": self.embedding_size,
            "margin": self.margin,
            "scale": self.scale,
        }
