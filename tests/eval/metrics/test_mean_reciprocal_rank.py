from simtune.eval.metrics import MeanReciprocalRank


def test_is_one_over_the_rank_of_the_first_relevant_item(one_query_evaluation):
    assert one_query_evaluation(MeanReciprocalRank())["mrr"] == 0.5
