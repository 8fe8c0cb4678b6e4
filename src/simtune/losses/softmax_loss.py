"""Plain classification as a similarity loss: a linear classifier over the embedding."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from simtune.losses._checks import check_against_parameters, check_group_batch, check_positive
from simtune.losses.base import GroupLoss


class SoftmaxLoss(GroupLoss):
    """Cross-entropy of ``embeddings @ W.T + b`` against the group ids ``0 .. num_groups - 1``.

    The class weights ``classifier`` are learned with the model (see ``trainable_parameters``) and are
    thrown away after training: only the embedding is kept.
    """

    def __init__(self, num_groups: int, embedding_size: int, temperature: float = 1.0):
        super().__init__(distance=None)
        check_positive("num_groups", num_groups)
        check_positive("embedding_size", embedding_size)
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.num_groups = int(num_groups)
        self.embedding_size = int(embedding_size)
        self.temperature = float(temperature)
        self.classifier = nn.Linear(embedding_size, num_groups)

    def get_config(self) -> dict[str, Any]:
        return {"num_groups": self.num_groups, "embedding_size": self.embedding_size, "temperature": self.temperature}

    def forward(self, embeddings: Tensor, groups: Tensor) -> Tensor:
        check_group_batch(embeddings, groups)
        check_against_parameters(embeddings, groups, self.num_groups, self.embedding_size, type(self).__name__)
        return F.cross_entropy(self.classifier(embeddings) / self.temperature, groups.long())
