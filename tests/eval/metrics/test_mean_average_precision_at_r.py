from simtune.eval.metrics import MeanAveragePrecisionAtR


def test_averages_precision_at_relevant_positions_within_r(one_query_evaluation):
    # ranking B, A, A, B with R = 2: only position 2 is relevant and within R, precision there 1/2
    assert one_query_evaluation(MeanAveragePrecisionAtR())["map_at_r"] == 0.25
