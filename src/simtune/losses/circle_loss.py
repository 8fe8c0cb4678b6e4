from __future__ import annotations

from typing import Any

from torch import Tensor

from simtune.distances import Distance
from simtune.functional.pair_weighting import circle_loss
from simtune.losses._checks import check_group_batch
from simtune.losses.base import GroupLoss


class CircleLoss(GroupLoss):
    """Circle loss: each similarity is weighted by how far it is from its optimum, so pairs that are
    already good stop dominating the gradient. ``m`` is the relaxation margin, ``gamma`` the scale.

    Works on ``distance.similarity_matrix``; the defaults (fine-grained retrieval in the paper) assume
    a cosine-like similarity in [-1, 1].
    """

    def __init__(self, m: float = 0.4, gamma: float = 80.0, distance: str | Distance = "cosine"):
        super().__init__(distance)
        if gamma <= 0:
            raise ValueError(f"gamma must be > 0, got {gamma}")
        self.m, self.gamma = m, gamma

    def forward(self, embeddings: Tensor, groups: Tensor) -> Tensor:
        check_group_batch(embeddings, groups)
        return circle_loss(self.distance.similarity_matrix(embeddings), groups, self.m, self.gamma)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "m": self.m, "gamma": self.gamma}
