from simtune.eval.metrics import NDCGAtK, PrecisionAtK, RecallAtK


def test_names_are_the_keys_of_results():
    assert [m.name for m in (PrecisionAtK(5), RecallAtK(10), NDCGAtK(3))] == ["precision_at_5", "recall_at_10", "ndcg_at_3"]

