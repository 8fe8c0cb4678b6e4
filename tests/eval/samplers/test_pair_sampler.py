import pytest

from simtune.data.samples import SimilarityPairSample
from simtune.eval import PairSampler


def test_objects_are_merged_and_pairs_relevant_both_ways():
    pairs = [SimilarityPairSample("a", "b"), SimilarityPairSample("b", "c"), SimilarityPairSample("c", "d", score=0.0)]
    task = PairSampler().sample(pairs)
    assert task.objects == ["a", "b", "c", "d"]
    assert sorted(map(tuple, task.relevant_pairs.tolist())) == [(0, 1), (1, 0), (1, 2), (2, 1)]
    assert sorted(map(tuple, task.excluded_pairs.tolist())) == [(i, i) for i in range(4)]


def test_same_subgroup_objects_leave_each_others_rankings_unless_paired():
    pairs = [SimilarityPairSample("a", "b", subgroup=5), SimilarityPairSample("c", "d", subgroup=5)]
    task = PairSampler().sample(pairs)
    excluded = set(map(tuple, task.excluded_pairs.tolist())) - {(i, i) for i in range(4)}
    assert excluded == {(0, 2), (2, 0), (0, 3), (3, 0), (1, 2), (2, 1), (1, 3), (3, 1)}


def test_sampled_pairs_choose_queries_and_keep_the_whole_gallery():
    pairs = [SimilarityPairSample(f"q{i}", f"r{i}") for i in range(20)]
    task = PairSampler(sample_size=3, seed=1).sample(pairs)
    assert len(task.query_rows) == 6 and len(task.gallery_rows) == 40
    assert task.relevant_pairs[:, 0].unique().tolist() == list(range(6))  # positions among queries
    again = PairSampler(sample_size=3, seed=1).sample(pairs)
    assert task.query_rows.tolist() == again.query_rows.tolist()


def test_unhashable_objects_are_kept_apart_by_identity():
    first, second = [1.0], [1.0]
    task = PairSampler().sample([SimilarityPairSample(first, second)])
    assert len(task.objects) == 2


def test_rejects_a_gallery_dataset():
    with pytest.raises(ValueError, match="no gallery_dataset"):
        PairSampler().sample([SimilarityPairSample("a", "b")], [SimilarityPairSample("c", "d")])
