from __future__ import annotations

from typing import Any

from torch import Tensor

from simtune.distances import Distance
from simtune.functional.pair_weighting import circle_loss
from simtune.losses._checks import check_references
from simtune.losses.base import GroupLoss


class CircleLoss(GroupLoss):
    """Circle loss: each similarity is weighted by how far it is from its optimum, so pairs that are
    already good stop dominating the gradient. ``m`` is the relaxation margin, ``gamma`` the scale.

    Works on ``distance.similarity_matrix``; the defaults (fine-grained retrieval in the paper) assume
    a cosine-like similarity in [-1, 1]. Takes references (cross-batch memory), see ``GroupLoss``.
    """

    supports_references = True

    def __init__(self, m: float = 0.4, gamma: float = 80.0, distance: str | Distance = "cosine"):
        super().__init__(distance)
        if gamma <= 0:
            raise ValueError(f"gamma must be > 0, got {gamma}")
        self.m, self.gamma = m, gamma

    def forward(
        self, embeddings: Tensor, groups: Tensor, ref_embeddings: Tensor | None = None, ref_groups: Tensor | None = None
    ) -> Tensor:
        references = check_references(embeddings, groups, ref_embeddings, ref_groups)
        similarity = self.distance.similarity_matrix(embeddings, references)
        return circle_loss(similarity, groups, self.m, self.gamma, ref_groups)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "m": self.m, "gamma": self.gamma}
