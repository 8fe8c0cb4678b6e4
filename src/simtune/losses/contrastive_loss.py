"""Contrastive loss (Hadsell, Chopra & LeCun 2006) over explicit scored pairs."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor

from simtune.distances import Distance
from simtune.losses._checks import check_pair_batch
from simtune.losses.base import PairwiseLoss


class ContrastiveLoss(PairwiseLoss):
    """Per pair ``label * d^p + (1 - label) * relu(margin - d)^p``, averaged over pairs.

    Similar pairs (label 1) are pulled together, dissimilar ones (label 0) pushed to at least
    ``margin`` apart; fractional labels interpolate. ``squared=True`` (p=2) is Hadsell et al.'s form;
    ``squared=False`` (p=1) is the hinge form pytorch-metric-learning uses.
    """

    def __init__(self, margin: float = 0.5, squared: bool = True, distance: str | Distance = "cosine"):
        super().__init__(distance)
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        self.margin = float(margin)
        self.squared = bool(squared)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "margin": self.margin, "squared": self.squared}

    def forward(self, embeddings: Tensor, pairs: Tensor, labels: Tensor, subgroups: Tensor) -> Tensor:
        check_pair_batch(embeddings, pairs, labels, subgroups)
        if len(pairs) == 0:
            return embeddings.sum() * 0.0
        distances = self.distance.distance(embeddings[pairs[:, 0]], embeddings[pairs[:, 1]])
        power = 2 if self.squared else 1
        labels = labels.to(distances.dtype)
        losses = labels * distances.pow(power) + (1 - labels) * F.relu(self.margin - distances).pow(power)
        return losses.mean()
