"""Two loss families, as in Quaterion: group losses (class labels) and pairwise losses (explicit pairs).

Each subclass implements ``forward`` and reports its hyperparameters with ``get_config`` so the
training layer can log and save them; ``type(loss)(**loss.get_config())`` rebuilds it.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from torch import Tensor, nn

from simtune.distances import Distance, get_distance


class SimilarityLoss(nn.Module):
    def __init__(self, distance: str | Distance = "cosine"):
        super().__init__()
        self.distance = get_distance(distance)

    def get_config(self) -> dict[str, Any]:
        return {"distance": self.distance.name}


class GroupLoss(SimilarityLoss):
    """``forward(embeddings (B, D), groups (B,) int) -> scalar``: same group = similar."""

    @abstractmethod
    def forward(self, embeddings: Tensor, groups: Tensor) -> Tensor: ...


class PairwiseLoss(SimilarityLoss):
    """``forward(embeddings (2P, D), pairs (P, 2) long, labels (P,) float, subgroups (2P,)) -> scalar``.

    ``pairs[i]`` indexes two rows of ``embeddings``; ``labels[i]`` is the pair's similarity score;
    rows in the same non-zero subgroup are never used as each other's negatives.
    """

    @abstractmethod
    def forward(self, embeddings: Tensor, pairs: Tensor, labels: Tensor, subgroups: Tensor) -> Tensor: ...
