"""Any pytorch-metric-learning loss (and miner) as a simtune group loss."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from simtune.losses._checks import check_group_batch
from simtune.losses.base import GroupLoss


def _build(module: Any, kind: str, spec: Any, kwargs: dict[str, Any] | None) -> nn.Module | None:
    """``spec`` is None, an instance (used as is) or a class name looked up in ``module``."""
    if spec is None or not isinstance(spec, str):
        return spec
    if not hasattr(module, spec):
        raise ValueError(f"pytorch_metric_learning.{module.__name__.rsplit('.', 1)[-1]} has no {kind} named {spec!r}")
    return getattr(module, spec)(**(kwargs or {}))


class PytorchMetricLearningLoss(GroupLoss):
    """Wraps ``pytorch_metric_learning`` so its losses train like ours: ``forward(embeddings, groups)``.

    ``loss`` and ``miner`` are either instances or class names (``"TripletMarginLoss"``) built with
    ``loss_kwargs``/``miner_kwargs``. Only the by-name form has a JSON config (an instance's
    constructor arguments cannot be recovered), so ``get_config`` refuses instances. Losses with
    weights (ArcFace, proxies) are submodules, so ``trainable_parameters`` lists them. Distances are
    the wrapped loss's own (pass ``distance=`` in ``loss_kwargs`` as a pytorch-metric-learning object).
    """

    def __init__(
        self,
        loss: Any,
        miner: Any = None,
        loss_kwargs: dict[str, Any] | None = None,
        miner_kwargs: dict[str, Any] | None = None,
    ):
        super().__init__(distance=None)
        from pytorch_metric_learning import losses, miners

        self._by_name = isinstance(loss, str) and (miner is None or isinstance(miner, str))
        self.loss_name, self.miner_name = _name(loss), _name(miner)
        self.loss_kwargs, self.miner_kwargs = dict(loss_kwargs or {}), dict(miner_kwargs or {})
        self.loss = _build(losses, "loss", loss, loss_kwargs)
        self.miner = _build(miners, "miner", miner, miner_kwargs)

    def get_config(self) -> dict[str, Any]:
        if not self._by_name:
            raise ValueError(
                "PytorchMetricLearningLoss built from instances has no JSON config; "
                "pass loss/miner by class name with loss_kwargs/miner_kwargs instead"
            )
        return {
            "loss": self.loss_name,
            "miner": self.miner_name,
            "loss_kwargs": self.loss_kwargs,
            "miner_kwargs": self.miner_kwargs,
        }

    def forward(self, embeddings: Tensor, groups: Tensor) -> Tensor:
        check_group_batch(embeddings, groups)
        indices = None if self.miner is None else self.miner(embeddings, groups)
        return self.loss(embeddings, groups, indices)


def _name(obj: Any) -> str | None:
    return obj if obj is None or isinstance(obj, str) else type(obj).__name__
