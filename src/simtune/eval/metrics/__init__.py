"""Retrieval metrics, one per file; the built-ins name scores registered in ``simtune.functional.retrieval``."""

from simtune.eval.metrics.base import RegisteredMetric, RetrievalMetric, RetrievalMetricAtK
from simtune.eval.metrics.mean_average_precision_at_r import MeanAveragePrecisionAtR
from simtune.eval.metrics.mean_reciprocal_rank import MeanReciprocalRank
from simtune.eval.metrics.ndcg_at_k import NDCGAtK
from simtune.eval.metrics.precision_at_k import PrecisionAtK
from simtune.eval.metrics.recall_at_k import RecallAtK
from simtune.eval.metrics.retrieval_r_precision import RetrievalRPrecision

__all__ = [
    "RetrievalMetric",
    "RetrievalMetricAtK",
    "RegisteredMetric",
    "RetrievalRPrecision",
    "MeanAveragePrecisionAtR",
    "PrecisionAtK",
    "RecallAtK",
    "MeanReciprocalRank",
    "NDCGAtK",
]
