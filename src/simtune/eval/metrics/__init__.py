"""Retrieval metrics. A metric is named by its registered name (``"mrr"``, ``"precision_at_1"``) or given as a
``RetrievalMetric``; the built-in classes (``builtin.py``) only bind those names."""

from simtune.eval.metrics.base import RegisteredMetric, RetrievalMetric, RetrievalMetricAtK, as_metric, named_metrics
from simtune.eval.metrics.builtin import (
    MeanAveragePrecisionAtR,
    MeanReciprocalRank,
    NDCGAtK,
    PrecisionAtK,
    RecallAtK,
    RetrievalPrecision,
    RetrievalReciprocalRank,
    RetrievalRPrecision,
)

__all__ = [
    "RetrievalMetric",
    "RetrievalMetricAtK",
    "RegisteredMetric",
    "as_metric",
    "named_metrics",
    "RetrievalRPrecision",
    "MeanAveragePrecisionAtR",
    "PrecisionAtK",
    "RecallAtK",
    "MeanReciprocalRank",
    "NDCGAtK",
    "RetrievalPrecision",
    "RetrievalReciprocalRank",
]
