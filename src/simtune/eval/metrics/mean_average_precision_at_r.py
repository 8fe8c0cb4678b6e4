from simtune.eval.metrics.base import RetrievalMetric


class MeanAveragePrecisionAtR(RetrievalMetric):
    """MAP@R: average precision over the first R results (rewards relevant items ranked early)."""

    @property
    def name(self) -> str:
        return "map_at_r"
