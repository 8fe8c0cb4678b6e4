"""Two loss families, as in Quaterion: group losses (class labels) and pairwise losses (explicit pairs).

Each subclass implements ``forward`` and reports its hyperparameters with ``get_config`` so the
training layer can log and save them; ``type(loss)(**loss.get_config())`` rebuilds it (the config is
plain JSON). Learned state (class weights, proxies, centres) is not config: it lives in the module's
parameters, which the training layer finds through ``trainable_parameters`` and adds to its optimizer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from torch import Tensor, nn

from simtune.distances import Distance, get_distance
from simtune.functional.mining import negative_mask, positive_mask
from simtune.losses._checks import check_references


class SimilarityLoss(nn.Module, ABC):
    """``distance=None`` is for losses that define their own geometry (softmax-style, proxies)."""

    def __init__(self, distance: str | Distance | None = "cosine"):
        super().__init__()
        self.distance = None if distance is None else get_distance(distance)

    def get_config(self) -> dict[str, Any]:
        return {} if self.distance is None else {"distance": self.distance.name}

    @property
    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters the loss itself learns; the optimizer must update them alongside the model's."""
        return [p for p in self.parameters() if p.requires_grad]


class GroupLoss(SimilarityLoss):
    """``forward(embeddings (B, D), groups (B,) int) -> scalar``: same group = similar.

    Losses that compare rows with rows (not with learned proxies or class weights) set
    ``supports_references`` and also take ``forward(embeddings, groups, ref_embeddings (R, D),
    ref_groups (R,))``: the B batch rows stay the only anchors and are compared with the other batch
    rows and with every reference. This is what cross-batch memory needs (references = remembered
    embeddings, which must not become anchors themselves); a row is never its own pair, and the caller
    leaves out references that are the same sample as a batch row.
    """

    supports_references: ClassVar[bool] = False

    @abstractmethod
    def forward(self, embeddings: Tensor, groups: Tensor) -> Tensor: ...

    def anchor_distances(
        self, embeddings: Tensor, groups: Tensor, ref_embeddings: Tensor | None, ref_groups: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Checked inputs -> (B, B + R) distances from the batch rows to the batch then the references,
        with the positive and negative masks over the same columns (a row is never its own pair)."""
        references = check_references(embeddings, groups, ref_embeddings, ref_groups)
        distances = self.distance.distance_matrix(embeddings, references)
        return distances, positive_mask(groups, ref_groups), negative_mask(groups, ref_groups)


class PairwiseLoss(SimilarityLoss):
    """``forward(embeddings (2P, D), pairs (P, 2) long, labels (P,) float, subgroups (2P,)) -> scalar``.

    ``pairs[i]`` indexes two rows of ``embeddings``; ``labels[i]`` is the pair's similarity score;
    rows in the same non-zero subgroup are never used as each other's negatives.
    """

    @abstractmethod
    def forward(self, embeddings: Tensor, pairs: Tensor, labels: Tensor, subgroups: Tensor) -> Tensor: ...
