from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from simtune.functional.proxy_losses import cosface_loss
from simtune.losses._checks import check_against_parameters, check_group_batch, check_positive
from simtune.losses.base import GroupLoss


class CosFaceLoss(GroupLoss):
    """Softmax over classes with an additive cosine margin: true-class logit ``scale*(cos(theta)-margin)``.

    Owns one weight vector per class (``weight``, shape (num_groups, embedding_size)); they are
    listed in ``trainable_parameters`` so the optimizer learns them with the model. Geometry is
    angular, so there is no distance choice.
    """

    def __init__(self, num_groups: int, embedding_size: int, margin: float = 0.35, scale: float = 64.0):
        super().__init__(distance=None)
        check_positive("num_groups", num_groups)
        check_positive("embedding_size", embedding_size)
        if not 0.0 <= margin <= 2.0:
            raise ValueError(f"margin must be a cosine offset in [0, 2], got {margin}")
        if scale <= 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        self.num_groups, self.embedding_size = num_groups, embedding_size
        self.margin, self.scale = margin, scale
        self.weight = nn.Parameter(torch.randn(num_groups, embedding_size))

    def forward(self, embeddings: Tensor, groups: Tensor) -> Tensor:
        check_group_batch(embeddings, groups)
        check_against_parameters(embeddings, groups, self.num_groups, self.embedding_size, "CosFaceLoss")
        return cosface_loss(embeddings, self.weight, groups, self.margin, self.scale)

    def get_config(self) -> dict[str, Any]:
        return {
            "num_groups": self.num_groups,
            "embedding_size": self.embedding_size,
            "margin": self.margin,
            "scale": self.scale,
        }
