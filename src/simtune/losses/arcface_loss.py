from __future__ import annotations

import math

from simtune.functional.proxy_losses import arcface_loss
from simtune.losses.margin_softmax_loss import MarginSoftmaxLoss


class ArcFaceLoss(MarginSoftmaxLoss):
    """Softmax over classes with an additive angular margin: true-class logit ``scale*cos(theta+margin)``.

    ``margin`` is in radians (pytorch-metric-learning takes degrees).
    """

    loss_fn = staticmethod(arcface_loss)

    def __init__(self, num_groups: int, embedding_size: int, margin: float = 0.5, scale: float = 64.0):
        super().__init__(num_groups, embedding_size, margin, scale)

    def check_margin(self, margin: float) -> None:
        if not 0.0 <= margin < math.pi:
            raise ValueError(f"margin must be an angle in radians in [0, pi), got {margin}")
