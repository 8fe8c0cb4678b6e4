"""Contrastive loss on pairs mined from a labelled batch instead of given pairs."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from simtune.distances import Distance
from simtune.functional.mining import hardest_negative, hardest_positive
from simtune.losses._checks import mining_scheme
from simtune.losses.base import GroupLoss

MINING_ALIASES = {"all": "all", "batch_all": "all", "hard": "hard", "batch_hard": "hard"}


class OnlineContrastiveLoss(GroupLoss):
    """``mean(d_pos^p) + mean(relu(margin - d_neg)^p)`` over pairs mined from the batch.

    ``"all"`` uses every positive and every negative pair; ``"hard"`` uses each anchor's farthest
    positive and closest negative. The two terms are averaged separately because a batch holds far
    more negative than positive pairs. A row is never its own positive or negative; a term with no
    pairs contributes 0. ``squared`` as in ``ContrastiveLoss``. Takes references (cross-batch
    memory), see ``GroupLoss``: pairs are (batch row, batch row or reference).
    """

    supports_references = True

    def __init__(
        self, margin: float = 0.5, mining: str = "hard", squared: bool = True, distance: str | Distance = "cosine"
    ):
        super().__init__(distance)
        self.mining = mining_scheme(mining, MINING_ALIASES)
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        self.margin = float(margin)
        self.squared = bool(squared)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "margin": self.margin, "mining": self.mining, "squared": self.squared}

    def forward(
        self, embeddings: Tensor, groups: Tensor, ref_embeddings: Tensor | None = None, ref_groups: Tensor | None = None
    ) -> Tensor:
        distances, positives, negatives = self.anchor_distances(embeddings, groups, ref_embeddings, ref_groups)
        if self.mining == "hard":
            positive_distances, positives = hardest_positive(distances, positives)
            negative_distances, negatives = hardest_negative(distances, negatives)
        else:
            positive_distances = negative_distances = distances
        power = 2 if self.squared else 1
        positive_loss = torch.where(positives, positive_distances.pow(power), 0.0)
        negative_loss = torch.where(negatives, F.relu(self.margin - negative_distances).pow(power), 0.0)
        return positive_loss.sum() / positives.sum().clamp_min(1) + negative_loss.sum() / negatives.sum().clamp_min(1)
