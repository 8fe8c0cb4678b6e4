"""Retrieval metrics for a training loop: accumulate a whole validation epoch, compute once.

A batch-averaged R-Precision depends on how the batches were composed; accumulating embeddings and
computing over the whole validation set gives the number ``evaluate`` would give on the same data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from simtune.distances import Distance
from simtune.eval.metric_arguments import named_metrics
from simtune.eval.metrics import RetrievalMetric
from simtune.functional.retrieval import DEFAULT_MAX_MEMORY_MB, RetrievalResult, retrieval_metrics


class AttachedMetric:
    """``reset()`` at epoch start, ``update(embeddings, groups)`` per batch, ``compute()`` at epoch end.

    Quaterion's form, ``AttachedMetric("rrp", metric=RetrievalRPrecision(), prog_bar=True)``, logs
    ``"validation_rrp"`` (Quaterion logs ``"rrp_validation"``), the key a ``ModelCheckpoint`` or
    ``EarlyStopping`` monitors. A list of metrics, ``AttachedMetric([RetrievalRPrecision(),
    PrecisionAtK(1)])``, logs each under its own name (``"validation_r_precision"``, ...); a name with
    a list or dict of metrics logs ``"validation_<name>_<metric>"``. ``logger`` (None: Lightning's
    default), ``prog_bar`` and further ``log_options`` go to ``LightningModule.log``. Metrics are
    computed once per validation epoch over every validation embedding, so ``on_step=True`` and
    ``on_epoch=False`` are refused.
    Every object is both a query and (excluded from its own results) the gallery.
    """

    def __init__(
        self,
        name: str | Sequence[RetrievalMetric] | RetrievalMetric,
        metric: RetrievalMetric | Sequence[RetrievalMetric] | Mapping[str, RetrievalMetric] | None = None,
        logger: bool | None = None,
        prog_bar: bool = True,
        on_step: bool | None = None,
        on_epoch: bool | None = None,
        *,
        prefix: str = "validation",
        distance: str | Distance = "cosine",
        max_memory_mb: float = DEFAULT_MAX_MEMORY_MB,
        device: str | torch.device | None = None,
        **log_options: Any,
    ):
        if isinstance(name, str):
            if not name:
                raise ValueError("name must be a non-empty string, the metric's key in the logs")
            if metric is None:
                raise TypeError(
                    f"AttachedMetric({name!r}) needs metric=, e.g. AttachedMetric({name!r}, metric=RetrievalRPrecision())"
                )
            named = named_metrics(metric, "metric")
            single = isinstance(metric, RetrievalMetric)
            keys = {inner.name: name if single else f"{name}_{key}" for key, inner in named.items()}
        else:
            if metric is not None:
                raise TypeError("AttachedMetric takes either a name and metric=..., or a list of metrics, not both")
            named = named_metrics(name, "metrics")
            keys = {inner.name: key for key, inner in named.items()}
        if on_step:
            raise ValueError(
                "on_step=True is not supported: simtune computes attached metrics once per validation epoch over "
                "all validation embeddings (a per-batch retrieval metric depends on how batches were composed)"
            )
        if on_epoch is False:
            raise ValueError(
                "on_epoch=False is not supported: attached metrics are computed at the end of each validation epoch"
            )
        self.metrics = list(named.values())
        self.keys = keys
        self.prefix = prefix
        self.distance = distance
        self.max_memory_mb = max_memory_mb
        self.device = device
        self.log_options = {"prog_bar": prog_bar, **({} if logger is None else {"logger": logger}), **log_options}
        self.reset()

    @property
    def names(self) -> list[str]:
        """The keys ``compute()`` returns (and the trainer logs), e.g. ``["validation_rrp"]``."""
        head = f"{self.prefix}_" if self.prefix else ""
        return [f"{head}{self.keys[metric.name]}" for metric in self.metrics]

    def reset(self) -> None:
        self._embeddings: list[Tensor] = []
        self._groups: list[Tensor] = []

    def update(self, embeddings: Tensor, groups: Tensor) -> None:
        """Stores a detached CPU copy of one batch (B, D) with its groups (B,)."""
        if embeddings.ndim != 2 or groups.shape != (len(embeddings),):
            raise ValueError(
                f"update expects embeddings (B, D) and groups (B,), got {tuple(embeddings.shape)} "
                f"and {tuple(groups.shape)}"
            )
        self._embeddings.append(embeddings.detach().float().cpu())
        self._groups.append(groups.detach().long().cpu())

    def compute_result(self) -> RetrievalResult:
        if not self._embeddings:
            raise RuntimeError("AttachedMetric.compute() called before any update()")
        return retrieval_metrics(
            torch.cat(self._embeddings),
            torch.cat(self._groups),
            metrics=self.metrics,
            distance=self.distance,
            max_memory_mb=self.max_memory_mb,
            device=self.device,
        )

    def compute(self) -> dict[str, float]:
        head = f"{self.prefix}_" if self.prefix else ""
        return {f"{head}{self.keys[name]}": value for name, value in self.compute_result().metrics.items()}
