from simtune.eval.metrics.base import RetrievalMetricAtK


class RecallAtK(RetrievalMetricAtK):
    """Hit rate (CMC@k): 1 if any relevant item is among the first k results, else 0."""

    prefix = "recall"
