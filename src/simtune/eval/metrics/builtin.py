"""The built-in metrics under their class names (simtune's and Quaterion's): each only binds a registered name.

``PrecisionAtK(1)`` is the same metric as the name ``"precision_at_1"``; the classes exist so that code
written against Quaterion's (or pytorch-metric-learning's) names reads the same.
"""

from simtune.eval.metrics.base import RegisteredMetric, RetrievalMetricAtK


class RetrievalRPrecision(RegisteredMetric):
    """``"r_precision"``: share of relevant items among the first R results, R = the query's relevant count."""

    def __init__(self):
        super().__init__("r_precision")


class MeanAveragePrecisionAtR(RegisteredMetric):
    """``"map_at_r"``: average precision over the first R results (rewards relevant items ranked early)."""

    def __init__(self):
        super().__init__("map_at_r")


class MeanReciprocalRank(RegisteredMetric):
    """``"mrr"``: 1 / rank of the first relevant item in the full ranking (exact, no cut-off), per query."""

    def __init__(self):
        super().__init__("mrr")


class PrecisionAtK(RetrievalMetricAtK):
    """``"precision_at_{k}"``: relevant items among the first k results over min(k, R), so a perfect ranking
    scores 1 (Quaterion divides by k: the same number whenever k <= R, e.g. k=1)."""

    prefix = "precision"


class RecallAtK(RetrievalMetricAtK):
    """``"recall_at_{k}"``: hit rate (CMC@k), 1 if any relevant item is among the first k results, else 0."""

    prefix = "recall"


class NDCGAtK(RetrievalMetricAtK):
    """``"ndcg_at_{k}"``: binary-relevance DCG of the first k results over the ideal DCG of min(k, R) items."""

    prefix = "ndcg"


RetrievalPrecision = PrecisionAtK  # Quaterion's quaterion.eval.pair.RetrievalPrecision(k=1)
RetrievalReciprocalRank = MeanReciprocalRank  # Quaterion's quaterion.eval.pair.RetrievalReciprocalRank()
