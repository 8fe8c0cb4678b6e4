import pytest
import torch

from simtune.data import SimilarityGroupSample, SimilarityPairSample
from simtune.train.cache.cached_loader import CachedCollate, pair_targets
from simtune.train.cache.fill import split_samples
from simtune.train.cache.storage import CachedEmbeddings


def test_pair_rows_are_interleaved_and_targets_follow():
    targets = pair_targets(torch.tensor([1.0, 0.0]), torch.tensor([3, 0]))
    assert targets["pairs"].tolist() == [[0, 1], [2, 3]]
    assert targets["labels"].tolist() == [1.0, 0.0] and targets["subgroups"].tolist() == [3, 3, 0, 0]


def test_pair_batch_keys_point_at_both_objects_of_each_pair():
    targets = {"scores": torch.tensor([1.0, 0.0, 1.0]), "subgroups": torch.zeros(3, dtype=torch.long)}
    cache = CachedEmbeddings("pair", {"default": torch.randn(1, 6, 2)}, targets, {})
    collate = CachedCollate(lambda: cache, ["default"], {})
    features, targets = collate([2, 0])
    assert features["default"].tolist() == [[0, 4], [0, 5], [0, 0], [0, 1]]  # [view, row]
    assert targets["labels"].tolist() == [1.0, 1.0]


def test_mixed_sample_kinds_cannot_be_cached():
    with pytest.raises(
        TypeError, match="must all be SimilarityGroupSample, all SimilarityPairSample or all plain objects.*got a mix"
    ):
        split_samples([SimilarityGroupSample("a", 0), SimilarityPairSample("a", "b")])
