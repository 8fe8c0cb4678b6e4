from simtune.eval.metrics.base import RetrievalMetricAtK


class NDCGAtK(RetrievalMetricAtK):
    """Binary-relevance DCG of the first k results over the ideal DCG of min(k, R) relevant items."""

    prefix = "ndcg"
