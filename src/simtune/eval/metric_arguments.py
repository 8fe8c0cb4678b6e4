"""The metric argument of ``Evaluator`` and ``AttachedMetric``: one metric, a list, or ``{name: metric}``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simtune.eval.metrics import RetrievalMetric


def named_metrics(metrics: Any, argument: str) -> dict[str, RetrievalMetric]:
    """``{result name: metric}``. A single metric or a list reports under each metric's own name
    (``"r_precision"``); a dict reports under its keys, as Quaterion's ``Evaluator`` does."""
    if isinstance(metrics, RetrievalMetric):
        metrics = [metrics]
    if isinstance(metrics, Mapping):
        named = dict(metrics)
        if not all(isinstance(name, str) and name for name in named):
            raise ValueError(f"{argument} keys must be non-empty strings (the result names), got {list(named)!r}")
    elif isinstance(metrics, (list, tuple)):
        named = {getattr(metric, "name", repr(metric)): metric for metric in metrics}
        if len(named) != len(metrics):
            names = [getattr(metric, "name", repr(metric)) for metric in metrics]
            raise ValueError(f"{argument} must have distinct names, got {names}")
    else:
        raise TypeError(
            f"{argument} must be a RetrievalMetric (e.g. RetrievalRPrecision()), a list of them or a dict "
            f"{{name: metric}}, got {type(metrics).__name__}"
        )
    if not named or not all(isinstance(metric, RetrievalMetric) for metric in named.values()):
        raise ValueError(f"{argument} must be a non-empty list or dict of RetrievalMetric, got {metrics!r}")
    inner = [metric.name for metric in named.values()]
    if len(set(inner)) != len(inner):
        raise ValueError(f"{argument} must have distinct names, got {inner}")
    return named
