from __future__ import annotations

from typing import Any

from torch import Tensor

from simtune.functional.fast_ap import fast_ap_loss
from simtune.losses._checks import check_group_batch
from simtune.losses.base import GroupLoss


class FastAPLoss(GroupLoss):
    """1 - FastAP: optimises average precision of the ranking each anchor induces, through soft
    histograms of distances (``num_bins`` bins). Large batches help: AP is a ranking over the batch.

    Distances are squared Euclidean between L2-normalised embeddings (= 2 x cosine distance): the
    histogram needs a bounded range, so there is no distance choice.
    """

    def __init__(self, num_bins: int = 10):
        super().__init__(distance=None)
        if int(num_bins) != num_bins or num_bins < 1:
            raise ValueError(f"num_bins must be a positive integer, got {num_bins}")
        self.num_bins = int(num_bins)

    def forward(self, embeddings: Tensor, groups: Tensor) -> Tensor:
        check_group_batch(embeddings, groups)
        return fast_ap_loss(embeddings, groups, self.num_bins)

    def get_config(self) -> dict[str, Any]:
        return {"num_bins": self.num_bins}
