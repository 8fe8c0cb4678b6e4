from simtune.eval.metrics import RecallAtK


def test_is_a_hit_rate(one_query_evaluation):
    assert one_query_evaluation(RecallAtK(1))["recall_at_1"] == 0.0
    assert one_query_evaluation(RecallAtK(2))["recall_at_2"] == 1.0
