from __future__ import annotations

from simtune.functional.proxy_losses import cosface_loss
from simtune.losses.margin_softmax_loss import MarginSoftmaxLoss


class CosFaceLoss(MarginSoftmaxLoss):
    """Softmax over classes with an additive cosine margin: true-class logit ``scale*(cos(theta)-margin)``."""

    loss_fn = staticmethod(cosface_loss)

    def __init__(self, num_groups: int, embedding_size: int, margin: float = 0.35, scale: float = 64.0):
        super().__init__(num_groups, embedding_size, margin, scale)

    def check_margin(self, margin: float) -> None:
        if not 0.0 <= margin <= 2.0:
            raise ValueError(f"margin must be a cosine offset in [0, 2], got {margin}")
