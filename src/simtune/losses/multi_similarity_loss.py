from __future__ import annotations

from typing import Any

from torch import Tensor

from simtune.distances import Distance
from simtune.functional.pair_weighting import multi_similarity_loss
from simtune.losses._checks import check_references
from simtune.losses.base import GroupLoss


class MultiSimilarityLoss(GroupLoss):
    """Multi-Similarity loss with its pair miner: soft-weights positives (``alpha``) and negatives
    (``beta``) around the similarity threshold ``base``, after keeping only the pairs within
    ``epsilon`` of violating the hardest opposite pair (``epsilon=None`` keeps all pairs).

    Works on ``distance.similarity_matrix``; the defaults assume cosine similarity. Takes references
    (cross-batch memory), see ``GroupLoss``.
    """

    supports_references = True

    def __init__(
        self,
        alpha: float = 2.0,
        beta: float = 50.0,
        base: float = 0.5,
        epsilon: float | None = 0.1,
        distance: str | Distance = "cosine",
    ):
        super().__init__(distance)
        if alpha <= 0 or beta <= 0:
            raise ValueError(f"alpha and beta must be > 0, got alpha={alpha}, beta={beta}")
        if epsilon is not None and epsilon < 0:
            raise ValueError(f"epsilon must be >= 0 or None (no mining), got {epsilon}")
        self.alpha, self.beta, self.base, self.epsilon = alpha, beta, base, epsilon

    def forward(
        self, embeddings: Tensor, groups: Tensor, ref_embeddings: Tensor | None = None, ref_groups: Tensor | None = None
    ) -> Tensor:
        references = check_references(embeddings, groups, ref_embeddings, ref_groups)
        similarity = self.distance.similarity_matrix(embeddings, references)
        return multi_similarity_loss(similarity, groups, self.alpha, self.beta, self.base, self.epsilon, ref_groups)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "alpha": self.alpha,
            "beta": self.beta,
            "base": self.base,
            "epsilon": self.epsilon,
        }
