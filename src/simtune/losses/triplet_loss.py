"""Triplet loss with the three textbook mining schemes over a labelled batch."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from simtune.distances import Distance
from simtune.functional.mining import (
    hardest_negative,
    hardest_positive,
    margin_violation_sum,
    semi_hard_negative,
)
from simtune.losses._checks import mining_scheme
from simtune.losses.base import GroupLoss

MINING_ALIASES = {"all": "all", "batch_all": "all", "hard": "hard", "batch_hard": "hard", "semi_hard": "semi_hard"}
SCALES = (None, "mean_negative")


class TripletLoss(GroupLoss):
    """Pull each anchor's positives closer than its negatives by ``margin``.

    - ``"all"`` (batch-all): every valid triplet, averaged over the triplets whose loss is positive
      (averaging over all would drown the signal in already-satisfied triplets).
    - ``"hard"`` (batch-hard, Hermans et al. 2017): per anchor, hardest positive vs hardest negative,
      averaged over anchors that have both.
    - ``"semi_hard"`` (FaceNet): per anchor-positive pair, the closest negative still farther than the
      positive, averaged over the pairs that have one; pairs without one are skipped.

    ``soft=True`` replaces ``relu(x + margin)`` by ``softplus(x)`` (soft margin; ``margin`` is unused).
    It is refused for batch-all, where every one of the B^3 triplets would carry loss.

    ``scale="mean_negative"`` (batch-hard only) is Quaterion's batch-hard:
    ``relu((d_ap - d_an) / mean(d_an) + margin)``, each anchor's gap divided by the batch's mean
    hardest-negative distance (gradient flows through the mean too). The margin is then relative to
    how far negatives currently are, so it means the same at any distance scale. Being a ratio, it is
    the same whether cosine distance is ``1 - cos`` (simtune) or ``(1 - cos) / 2`` (Quaterion's
    ``distance_matrix``). The mean runs over the anchors that have a
    positive and a negative; Quaterion also counts anchors without a positive (with ``d_ap = 0``),
    which only matters for batches holding single-sample classes.

    Takes references (cross-batch memory), see ``GroupLoss``: anchors stay the batch rows.
    """

    supports_references = True

    def __init__(
        self,
        margin: float = 0.5,
        mining: str = "hard",
        soft: bool = False,
        distance: str | Distance = "cosine",
        scale: str | None = None,
    ):
        super().__init__(distance)
        self.mining = mining_scheme(mining, MINING_ALIASES)
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        if soft and self.mining == "all":
            raise ValueError("soft=True needs mining='hard' or 'semi_hard': with batch-all every triplet carries loss")
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
        if scale is not None and (self.mining != "hard" or soft):
            raise ValueError(
                f"scale={scale!r} is defined for mining='hard' with soft=False (Quaterion's batch-hard), "
                f"got mining={mining!r}, soft={soft}"
            )
        self.margin = float(margin)
        self.soft = bool(soft)
        self.scale = scale

    def get_config(self) -> dict[str, Any]:
        config = {**super().get_config(), "margin": self.margin, "mining": self.mining, "soft": self.soft}
        return config if self.scale is None else {**config, "scale": self.scale}

    def forward(
        self, embeddings: Tensor, groups: Tensor, ref_embeddings: Tensor | None = None, ref_groups: Tensor | None = None
    ) -> Tensor:
        distances, positives, negatives = self.anchor_distances(embeddings, groups, ref_embeddings, ref_groups)
        if self.mining == "all":
            total, count = margin_violation_sum(distances, positives, negatives, self.margin)
            return total / count.clamp_min(1)
        if self.mining == "hard":
            d_ap, has_positive = hardest_positive(distances, positives)
            d_an, has_negative = hardest_negative(distances, negatives)
            valid = has_positive & has_negative
        else:
            d_an, valid = semi_hard_negative(distances, positives, negatives)
            d_ap = distances
        gaps = d_ap - d_an
        if self.scale == "mean_negative":
            gaps = gaps / _masked_mean(d_an, valid).clamp_min(_TINY)
        losses = F.softplus(gaps) if self.soft else F.relu(gaps + self.margin)
        return torch.where(valid, losses, torch.zeros_like(losses)).sum() / valid.sum().clamp_min(1)


_TINY = 1e-12  # all negatives at distance 0: the gaps are 0 too, and stay 0 instead of 0/0


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    return torch.where(mask, values, torch.zeros_like(values)).sum() / mask.sum().clamp_min(1)
