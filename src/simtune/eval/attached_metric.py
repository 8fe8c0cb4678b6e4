"""Retrieval metrics for a training loop: accumulate a whole validation epoch, compute once.

A batch-averaged R-Precision depends on how the batches were composed; accumulating embeddings and
computing over the whole validation set gives the number ``evaluate`` would give on the same data.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from simtune.distances import Distance
from simtune.eval.metrics import RetrievalMetric
from simtune.functional.retrieval import DEFAULT_MAX_MEMORY_MB, RetrievalResult, retrieval_metrics


class AttachedMetric:
    """``reset()`` at epoch start, ``update(embeddings, groups)`` per batch, ``compute()`` at epoch end.

    ``compute()`` returns ``{f"{prefix}_{metric.name}": value}``, e.g. ``"validation_r_precision"``.
    Every object is both a query and (excluded from its own results) the gallery.
    """

    def __init__(
        self,
        metrics: Sequence[RetrievalMetric],
        prefix: str = "validation",
        *,
        distance: str | Distance = "cosine",
        max_memory_mb: float = DEFAULT_MAX_MEMORY_MB,
        device: str | torch.device | None = None,
    ):
        self.metrics = list(metrics)
        if not self.metrics or not all(isinstance(metric, RetrievalMetric) for metric in self.metrics):
            raise ValueError(f"metrics must be a non-empty list of RetrievalMetric, got {metrics!r}")
        self.prefix = prefix
        self.distance = distance
        self.max_memory_mb = max_memory_mb
        self.device = device
        self.reset()

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
        return {f"{head}{name}": value for name, value in self.compute_result().metrics.items()}
