from simtune.eval.metrics.base import RegisteredMetric


class MeanReciprocalRank(RegisteredMetric):
    """1 / rank of the first relevant item in the full ranking (exact, no cut-off), per query."""

    def __init__(self):
        super().__init__("mrr")
