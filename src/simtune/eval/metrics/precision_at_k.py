from simtune.eval.metrics.base import RetrievalMetricAtK


class PrecisionAtK(RetrievalMetricAtK):
    """Relevant items among the first k results over min(k, R): a perfect ranking always scores 1."""

    prefix = "precision"
