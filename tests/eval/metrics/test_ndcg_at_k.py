import math

import pytest

from simtune.eval.metrics import NDCGAtK


def test_normalises_by_the_ideal_ranking(one_query_evaluation):
    # ranking B, A, A, B: hits at positions 2 and 3; the ideal puts both relevant items first
    dcg = 1 / math.log2(3) + 1 / math.log2(4)
    ideal = 1 + 1 / math.log2(3)
    assert one_query_evaluation(NDCGAtK(3))["ndcg_at_3"] == pytest.approx(dcg / ideal, abs=1e-12)
    assert one_query_evaluation(NDCGAtK(1))["ndcg_at_1"] == 0.0
