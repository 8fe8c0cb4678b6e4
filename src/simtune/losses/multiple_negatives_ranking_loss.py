"""Multiple negatives ranking loss (Henderson et al. 2017): in-batch softmax over positive pairs."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from simtune.distances import Distance
from simtune.losses._checks import check_pair_batch
from simtune.losses.base import PairwiseLoss


class MultipleNegativesRankingLoss(PairwiseLoss):
    """Each pair's ``obj_a`` must pick its own ``obj_b`` out of every ``obj_b`` in the batch.

    Logits are ``scale * similarity(a_i, b_j)``; the loss is the cross-entropy with target ``j = i``.
    Every pair is a positive (labels must be > 0): the other pairs' second objects are the negatives,
    except those sharing ``a_i``'s non-zero subgroup. ``symmetric=True`` also makes each ``b_i`` pick
    its ``a_i`` and averages both directions (CLIP-style). This is NT-Xent with a temperature of
    ``1 / scale`` restricted to a-to-b comparisons.

    Logits use the plain cosine, ``cos`` in [-1, 1] (as sentence-transformers). Quaterion's cosine
    similarity is ``(cos + 1) / 2``, so its ``scale=20`` is ``scale=10`` here: port Quaterion code with
    ``MultipleNegativesRankingLoss.quaterion(scale=20, symmetric=...)``, which halves it for you.
    """

    def __init__(self, scale: float = 20.0, symmetric: bool = False, distance: str | Distance = "cosine"):
        super().__init__(distance)
        if scale <= 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        self.scale = float(scale)
        self.symmetric = bool(symmetric)

    @classmethod
    def quaterion(cls, scale: float = 20.0, symmetric: bool = False) -> MultipleNegativesRankingLoss:
        """The loss Quaterion's ``MultipleNegativesRankingLoss(scale, symmetric)`` computes (cosine):
        ``scale * (cos + 1) / 2`` differs from ``scale / 2 * cos`` by a constant, which no softmax sees."""
        return cls(scale=scale / 2, symmetric=symmetric)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "scale": self.scale, "symmetric": self.symmetric}

    def forward(self, embeddings: Tensor, pairs: Tensor, labels: Tensor, subgroups: Tensor) -> Tensor:
        check_pair_batch(embeddings, pairs, labels, subgroups)
        if (labels <= 0).any():
            raise ValueError("MultipleNegativesRankingLoss treats every pair as a positive; labels must all be > 0")
        if len(pairs) == 0:
            return embeddings.sum() * 0.0
        first, second = pairs[:, 0], pairs[:, 1]
        logits = self.scale * self.distance.similarity_matrix(embeddings[first], embeddings[second])
        same_subgroup = (subgroups[first][:, None] == subgroups[second][None, :]) & (subgroups[first][:, None] != 0)
        excluded = same_subgroup & ~torch.eye(len(pairs), dtype=torch.bool, device=logits.device)
        logits = logits.masked_fill(excluded, float("-inf"))
        targets = torch.arange(len(pairs), device=logits.device)
        loss = F.cross_entropy(logits, targets)
        if self.symmetric:
            loss = (loss + F.cross_entropy(logits.T, targets)) / 2
        return loss
