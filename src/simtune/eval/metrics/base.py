"""A retrieval metric is a named per-query score of each query's ranked relevance."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from torch import Tensor

from simtune.functional.retrieval import RankedRelevance, resolve_metric


class RetrievalMetric(ABC):
    """Subclass and implement ``score``, with a ``name`` (its key in results) and a ``depth``.

    ``score(ranked)`` maps each query's ranked relevance (``ranked.relevant``: (Q, depth) bool in
    rank order) and its number of relevant items (``ranked.num_relevant``, R >= 1) to a (Q,) tensor;
    results average it over the queries. ``depth`` is how many results it reads: an int, or "r" for
    each query's first R. Every metric of an evaluation is scored from one ranking pass, and
    relevance comes from the sampler (same group, or explicit pairs), so every metric works with both.
    """

    name: str
    depth: int | str = "r"

    @abstractmethod
    def score(self, ranked: RankedRelevance) -> Tensor: ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}({getattr(self, 'name', None)!r})"


class RegisteredMetric(RetrievalMetric):
    """A metric registered by name in simtune.functional.retrieval (``register_metric``), as the
    built-ins are: ``RegisteredMetric("precision_at_5")``."""

    def __init__(self, name: str):
        self._definition = resolve_metric(name)

    @property
    def name(self) -> str:
        return self._definition.name

    @property
    def depth(self) -> int | str:
        return self._definition.depth

    def score(self, ranked: RankedRelevance) -> Tensor:
        return self._definition.score(ranked)


class RetrievalMetricAtK(RegisteredMetric):
    """A registered ``<prefix>_at_{k}`` metric cut at the first ``k`` results."""

    prefix: str

    def __init__(self, k: int = 1):
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        self.k = k
        super().__init__(f"{self.prefix}_at_{k}")


def as_metric(metric: str | RetrievalMetric) -> RetrievalMetric:
    """The one way to name a metric: a registered name (``"mrr"``, ``"precision_at_5"``) or a RetrievalMetric."""
    if isinstance(metric, RetrievalMetric):
        return metric
    if isinstance(metric, str):
        return RegisteredMetric(metric)
    if isinstance(metric, type) and issubclass(metric, RetrievalMetric):
        raise TypeError(f"pass a metric instance, {metric.__name__}(), not the class")
    raise TypeError(
        f"a metric is a registered name (e.g. 'mrr', 'precision_at_1') or a RetrievalMetric, got {metric!r}"
    )


def named_metrics(metrics: Any, argument: str) -> dict[str, RetrievalMetric]:
    """``{result name: metric}`` from one metric, a list, or ``{result name: metric}`` (Quaterion's
    ``Evaluator`` form); a metric or a list reports under each metric's own name (``"r_precision"``)."""
    if not isinstance(metrics, (Mapping, list, tuple)):
        metrics = [metrics]
    if isinstance(metrics, Mapping):
        if not all(isinstance(name, str) and name for name in metrics):
            raise ValueError(f"{argument} keys must be non-empty strings (the result names), got {list(metrics)!r}")
        named = {name: as_metric(metric) for name, metric in metrics.items()}
    else:
        resolved = [as_metric(metric) for metric in metrics]
        named = {metric.name: metric for metric in resolved}
        if len(named) != len(resolved):
            raise ValueError(f"{argument} must have distinct names, got {[metric.name for metric in resolved]}")
    inner = [metric.name for metric in named.values()]
    if not named:
        raise ValueError(f"{argument} must name at least one metric")
    if len(set(inner)) != len(inner):
        raise ValueError(f"{argument} must have distinct names, got {inner}")
    return named
