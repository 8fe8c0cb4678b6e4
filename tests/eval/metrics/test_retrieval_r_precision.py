from simtune.eval.metrics import RetrievalRPrecision


def test_counts_relevant_items_among_the_first_r(one_query_evaluation):
    # ranking B, A, A, B with R = 2: one relevant item in the first two
    assert one_query_evaluation(RetrievalRPrecision())["r_precision"] == 0.5
