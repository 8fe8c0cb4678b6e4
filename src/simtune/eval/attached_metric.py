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
from simtune.eval.metrics import RetrievalMetric, named_metrics
from simtune.functional.retrieval import (
    DEFAULT_MAX_MEMORY_MB,
    RetrievalResult,
    pair_retrieval_metrics,
    resolve_metric,
    retrieval_metrics,
)


class AttachedMetric:
    """``reset()`` at epoch start, ``update(embeddings, groups)`` per batch, ``compute()`` at epoch end.

    Quaterion's form, ``AttachedMetric("rrp", metric=RetrievalRPrecision(), prog_bar=True)``, logs
    ``"validation_rrp"`` (Quaterion logs ``"rrp_validation"``), the key a ``ModelCheckpoint`` or
    ``EarlyStopping`` monitors. A list of metrics, ``AttachedMetric([RetrievalRPrecision(),
    PrecisionAtK(1)])``, logs each under its own name (``"validation_r_precision"``, ...); a name with
    a list or dict of metrics logs ``"validation_<name>_<metric>"``. ``logger`` (None: Lightning's
    default), ``prog_bar`` and further ``log_options`` go to ``LightningModule.log``. Metrics are
    computed once per validation epoch over every validation embedding, so ``on_step=True`` and
    ``on_epoch=False`` are refused. A metric is a registered name (``"mrr"``) or a ``RetrievalMetric``;
    ``AttachedMetric("mrr")`` alone attaches that metric under its own name.

    Every object is both a query and (excluded from its own results) the gallery. Group-labelled
    validation data: relevant = same group. Pair data (``update(embeddings, pairs=..., labels=...,
    subgroups=...)``, as ``TrainableModel`` passes a pairwise loss's batches): relevant = the other side
    of a positive pair, and rows sharing a non-zero subgroup are left out of each other's rankings,
    as ``PairSampler`` ranks; but each row is its own object (``PairSampler`` merges equal texts).
    """

    def __init__(
        self,
        name: str | RetrievalMetric | Sequence[str | RetrievalMetric],
        metric: str
        | RetrievalMetric
        | Sequence[str | RetrievalMetric]
        | Mapping[str, str | RetrievalMetric]
        | None = None,
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
        if isinstance(name, str) and metric is None:
            if not _registered(name):
                raise TypeError(
                    f"AttachedMetric({name!r}) needs metric=, e.g. AttachedMetric({name!r}, "
                    f"metric=RetrievalRPrecision()), unless {name!r} is a metric's registered name such as 'mrr' "
                    "or 'precision_at_1'"
                )
            name, metric = [name], None
        if isinstance(name, str):
            if not name:
                raise ValueError("name must be a non-empty string, the metric's key in the logs")
            named = named_metrics(metric, "metric")
            single = isinstance(metric, (str, RetrievalMetric))
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
        self._pairs: list[Tensor] = []
        self._subgroups: list[Tensor] = []
        self._rows = 0

    def update(
        self,
        embeddings: Tensor,
        groups: Tensor | None = None,
        *,
        pairs: Tensor | None = None,
        labels: Tensor | None = None,
        subgroups: Tensor | None = None,
    ) -> None:
        """Stores a detached CPU copy of one batch (B, D) with its groups (B,), or with its pairs (P, 2)
        of row indices, their labels (P,) (only pairs with a label > 0 are relevant) and the rows'
        subgroups (B,). One epoch is all groups or all pairs."""
        if (groups is None) == (pairs is None):
            raise ValueError("update takes groups (group-labelled data) or pairs= (pair data), exactly one")
        if embeddings.ndim != 2:
            raise ValueError(f"update expects embeddings (B, D), got {tuple(embeddings.shape)}")
        if self._embeddings and bool(self._pairs) != (pairs is not None):
            raise ValueError("one validation epoch cannot mix group-labelled and pair batches")
        rows = len(embeddings)
        if groups is not None:
            if groups.shape != (rows,):
                raise ValueError(
                    f"update expects embeddings (B, D) and groups (B,), got {tuple(embeddings.shape)} "
                    f"and {tuple(groups.shape)}"
                )
            self._groups.append(groups.detach().long().cpu())
        else:
            pairs = pairs.detach().long().cpu()
            if pairs.ndim != 2 or pairs.shape[1] != 2 or (len(pairs) and not (0 <= pairs.min() <= pairs.max() < rows)):
                raise ValueError(f"pairs must be (P, 2) row indices below {rows}, got shape {tuple(pairs.shape)}")
            positive = torch.ones(len(pairs), dtype=torch.bool) if labels is None else labels.detach().cpu() > 0
            subgroups = torch.zeros(rows, dtype=torch.long) if subgroups is None else subgroups.detach().long().cpu()
            if subgroups.shape != (rows,):
                raise ValueError(f"subgroups must be (B,) = ({rows},), got shape {tuple(subgroups.shape)}")
            self._pairs.append(pairs[positive] + self._rows)
            self._subgroups.append(subgroups)
        self._embeddings.append(embeddings.detach().float().cpu())
        self._rows += rows

    def compute_result(self) -> RetrievalResult:
        if not self._embeddings:
            raise RuntimeError("AttachedMetric.compute() called before any update()")
        options = dict(
            metrics=self.metrics, distance=self.distance, max_memory_mb=self.max_memory_mb, device=self.device
        )
        embeddings = torch.cat(self._embeddings)
        if not self._pairs:
            return retrieval_metrics(embeddings, torch.cat(self._groups), **options)
        pairs = torch.cat(self._pairs)
        pairs = pairs[pairs[:, 0] != pairs[:, 1]]
        relevant = torch.unique(torch.cat([pairs, pairs.flip(1)]), dim=0)
        return pair_retrieval_metrics(
            embeddings, relevant, excluded_pairs=same_subgroup_pairs(torch.cat(self._subgroups), relevant), **options
        )

    def compute(self) -> dict[str, float]:
        head = f"{self.prefix}_" if self.prefix else ""
        return {f"{head}{self.keys[name]}": value for name, value in self.compute_result().metrics.items()}


def same_subgroup_pairs(subgroups: Tensor, relevant: Tensor) -> Tensor:
    """(row, row) pairs of distinct rows sharing a non-zero subgroup, minus the relevant ones: never
    negatives for each other, so they are left out of the ranking."""
    members = torch.nonzero(subgroups != 0).flatten()
    if len(members) == 0:
        return torch.zeros(0, 2, dtype=torch.long)
    order = members[torch.argsort(subgroups[members], stable=True)]
    _, counts = torch.unique_consecutive(subgroups[order], return_counts=True)
    blocks = [torch.cartesian_prod(block, block) for block in torch.split(order, counts.tolist()) if len(block) > 1]
    if not blocks:
        return torch.zeros(0, 2, dtype=torch.long)
    candidates = torch.cat(blocks)
    candidates = candidates[candidates[:, 0] != candidates[:, 1]]
    size = len(subgroups)
    relevant_keys = torch.unique(relevant[:, 0] * size + relevant[:, 1])
    keys = candidates[:, 0] * size + candidates[:, 1]
    return candidates[~torch.isin(keys, relevant_keys)]


def _registered(name: str) -> bool:
    try:
        resolve_metric(name)
    except ValueError:
        return False
    return True
