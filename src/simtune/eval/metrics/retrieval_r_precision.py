from simtune.eval.metrics.base import RegisteredMetric


class RetrievalRPrecision(RegisteredMetric):
    """Share of relevant items among the first R results, R = the query's number of relevant items."""

    def __init__(self):
        super().__init__("r_precision")
