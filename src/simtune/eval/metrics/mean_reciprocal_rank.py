from simtune.eval.metrics.base import RetrievalMetric


class MeanReciprocalRank(RetrievalMetric):
    """1 / rank of the first relevant item in the full ranking (exact, no cut-off), per query."""

    @property
    def name(self) -> str:
        return "mrr"
