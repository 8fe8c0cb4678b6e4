from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from simtune.functional.proxy_losses import proxy_anchor_loss
from simtune.losses._checks import check_against_parameters, check_group_batch, check_positive
from simtune.losses.base import GroupLoss


class ProxyAnchorLoss(GroupLoss):
    """Proxy-Anchor: each class proxy pulls the batch's members of its class and pushes the rest.

    Converges in few epochs because every embedding interacts with every proxy (no mining). Owns
    ``proxies`` (num_groups, embedding_size), listed in ``trainable_parameters``; the paper trains
    them with a ~100x larger learning rate than the backbone. Cosine similarity by definition.
    """

    def __init__(self, num_groups: int, embedding_size: int, margin: float = 0.1, alpha: float = 32.0):
        super().__init__(distance=None)
        check_positive("num_groups", num_groups)
        check_positive("embedding_size", embedding_size)
        if alpha <= 0:
            raise ValueError(f"alpha must be > 0, got {alpha}")
        self.num_groups, self.embedding_size = num_groups, embedding_size
        self.margin, self.alpha = margin, alpha
        self.proxies = nn.Parameter(torch.empty(num_groups, embedding_size))
        nn.init.kaiming_normal_(self.proxies, mode="fan_out")

    def forward(self, embeddings: Tensor, groups: Tensor) -> Tensor:
        check_group_batch(embeddings, groups)
        check_against_parameters(embeddings, groups, self.num_groups, self.embedding_size, "ProxyAnchorLoss")
        return proxy_anchor_loss(embeddings, self.proxies, groups, self.margin, self.alpha)

    def get_config(self) -> dict[str, Any]:
        return {
            "num_groups": self.num_groups,
            "embedding_size": self.embedding_size,
            "margin": self.margin,
            "alpha": self.alpha,
        }
