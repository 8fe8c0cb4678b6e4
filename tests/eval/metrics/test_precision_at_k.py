import pytest

from simtune.eval.metrics import PrecisionAtK


def test_divides_by_the_smaller_of_k_and_the_relevant_count(one_query_evaluation):
    assert one_query_evaluation(PrecisionAtK(1))["precision_at_1"] == 0.0
    assert one_query_evaluation(PrecisionAtK(2))["precision_at_2"] == 0.5
    assert one_query_evaluation(PrecisionAtK(3))["precision_at_3"] == 1.0  # 2 hits, R = 2


@pytest.mark.parametrize("k", [0, -1, 1.5, True])
def test_rejects_a_k_that_is_not_a_positive_integer(k):
    with pytest.raises(ValueError, match="k must be a positive integer"):
        PrecisionAtK(k)
