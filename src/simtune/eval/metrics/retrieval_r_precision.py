from simtune.eval.metrics.base import RetrievalMetric


class RetrievalRPrecision(RetrievalMetric):
    """Share of relevant items among the first R results, R = the query's number of relevant items."""

    @property
    def name(self) -> str:
        return "r_precision"
