"""Evaluation: exact retrieval metrics, samplers, the Evaluator and metrics attached to training."""

from simtune.eval.attached_metric import AttachedMetric
from simtune.eval.evaluator import Evaluator, evaluate
from simtune.eval.metrics import (
    MeanAveragePrecisionAtR,
    MeanReciprocalRank,
    NDCGAtK,
    PrecisionAtK,
    RecallAtK,
    RegisteredMetric,
    RetrievalMetric,
    RetrievalPrecision,
    RetrievalReciprocalRank,
    RetrievalRPrecision,
)
from simtune.eval.samplers import GroupSampler, PairSampler, RetrievalTask, Sampler

__all__ = [
    "AttachedMetric",
    "Evaluator",
    "evaluate",
    "RetrievalMetric",
    "RegisteredMetric",
    "RetrievalRPrecision",
    "MeanAveragePrecisionAtR",
    "PrecisionAtK",
    "RecallAtK",
    "MeanReciprocalRank",
    "NDCGAtK",
    "RetrievalPrecision",
    "RetrievalReciprocalRank",
    "Sampler",
    "GroupSampler",
    "PairSampler",
    "RetrievalTask",
]
