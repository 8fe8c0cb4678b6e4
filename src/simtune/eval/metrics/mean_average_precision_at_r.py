from simtune.eval.metrics.base import RegisteredMetric


class MeanAveragePrecisionAtR(RegisteredMetric):
    """MAP@R: average precision over the first R results (rewards relevant items ranked early)."""

    def __init__(self):
        super().__init__("map_at_r")
