"""Center loss (Wen et al. 2016): pull every embedding towards a learned centre of its group."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from simtune.distances import Distance
from simtune.losses._checks import check_against_parameters, check_group_batch, check_positive
from simtune.losses.base import GroupLoss


class CenterLoss(GroupLoss):
    """``mean_i d(x_i, c_{group_i})^2 / 2`` with learned centres ``centers`` (num_groups, embedding_size).

    It only compacts groups, never separates them, so it is meant to be added to a discriminative loss
    (softmax, triplet). The centres are learned with the model (see ``trainable_parameters``).
    """

    def __init__(self, num_groups: int, embedding_size: int, distance: str | Distance = "euclidean"):
        super().__init__(distance)
        check_positive("num_groups", num_groups)
        check_positive("embedding_size", embedding_size)
        self.num_groups = int(num_groups)
        self.embedding_size = int(embedding_size)
        self.centers = nn.Parameter(torch.randn(num_groups, embedding_size))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_groups": self.num_groups, "embedding_size": self.embedding_size}

    def forward(self, embeddings: Tensor, groups: Tensor) -> Tensor:
        check_group_batch(embeddings, groups)
        check_against_parameters(embeddings, groups, self.num_groups, self.embedding_size, type(self).__name__)
        distances = self.distance.distance(embeddings, self.centers[groups.long()])
        return distances.pow(2).mean() / 2
