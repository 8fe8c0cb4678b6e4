import pickle

import pytest
import torch

from simtune.data import (
    ClassBalancedBatchSampler,
    GroupSimilarityDataLoader,
    PairsSimilarityDataLoader,
    SimilarityGroupSample,
    SimilarityPairSample,
    group_labels,
)

GROUP_SAMPLES = [SimilarityGroupSample(obj=f"item{i}", group=i % 4) for i in range(16)]
PAIR_SAMPLES = [SimilarityPairSample(obj_a=f"a{i}", obj_b=f"b{i}", score=i / 10, subgroup=i % 3) for i in range(7)]


def to_tensor(objects):  # module level, so worker processes can unpickle it
    return torch.tensor([int(obj.strip("abitem")) for obj in objects])


def test_group_batches_pass_objects_through_by_default():
    features, targets = next(iter(GroupSimilarityDataLoader(GROUP_SAMPLES, batch_size=5)))
    assert features == [f"item{i}" for i in range(5)]
    assert targets["groups"].dtype == torch.long and targets["groups"].tolist() == [0, 1, 2, 3, 0]


def test_pair_batches_lay_out_all_a_then_all_b():
    features, targets = next(iter(PairsSimilarityDataLoader(PAIR_SAMPLES, batch_size=3)))
    assert features == ["a0", "a1", "a2", "b0", "b1", "b2"]
    assert targets["pairs"].tolist() == [[0, 3], [1, 4], [2, 5]]
    assert targets["labels"].dtype == torch.float32 and targets["labels"].tolist() == pytest.approx([0.0, 0.1, 0.2])
    assert targets["subgroups"].tolist() == [0, 1, 2, 0, 1, 2]
    for i, j in targets["pairs"].tolist():
        assert features[i][1:] == features[j][1:]


def test_set_feature_collate_with_workers_and_a_class_balanced_sampler():
    sampler = ClassBalancedBatchSampler(
        group_labels(GROUP_SAMPLES), classes_per_batch=2, samples_per_class=3, batches_per_epoch=4
    )
    loader = GroupSimilarityDataLoader(GROUP_SAMPLES, batch_sampler=sampler, num_workers=2)
    loader.set_feature_collate(to_tensor)
    assert loader.feature_collate is to_tensor and loader.batch_sampler is sampler
    batches = list(loader)
    assert len(batches) == 4
    for features, targets in batches:
        assert torch.equal(features % 4, targets["groups"])  # features still line up with their groups
        assert len(set(targets["groups"].tolist())) == 2


def test_loader_pickles_with_its_feature_collate():
    loader = PairsSimilarityDataLoader(PAIR_SAMPLES, batch_size=4, feature_collate=to_tensor)
    copy = pickle.loads(pickle.dumps(loader))
    features, targets = next(iter(copy))
    assert copy.feature_collate is to_tensor
    assert features.tolist() == [0, 1, 2, 3, 0, 1, 2, 3] and targets["pairs"].tolist() == [
        [0, 4],
        [1, 5],
        [2, 6],
        [3, 7],
    ]


def test_wrong_items_and_collate_fn_are_refused_with_a_hint():
    with pytest.raises(TypeError, match="GroupDataset"):
        next(iter(GroupSimilarityDataLoader([("x", 0), ("y", 1)], batch_size=2)))
    with pytest.raises(TypeError, match="SimilarityPairSample"):
        next(iter(PairsSimilarityDataLoader(GROUP_SAMPLES, batch_size=2)))
    with pytest.raises(ValueError, match="feature_collate"):
        GroupSimilarityDataLoader(GROUP_SAMPLES, collate_fn=list)


def test_lightning_can_re_create_the_loader_with_a_distributed_sampler():
    """Under DDP Lightning rebuilds a loader from its attributes, collate_fn included, to swap the sampler."""
    from lightning.pytorch.utilities.data import _update_dataloader
    from torch.utils.data import DistributedSampler

    loader = PairsSimilarityDataLoader(PAIR_SAMPLES, batch_size=2, feature_collate=to_tensor)
    samplers = [DistributedSampler(PAIR_SAMPLES, num_replicas=2, rank=rank, shuffle=False) for rank in (0, 1)]
    shards = [_update_dataloader(loader, sampler) for sampler in samplers]
    assert all(type(shard) is PairsSimilarityDataLoader and shard.feature_collate is to_tensor for shard in shards)
    assert sum(len(shard) for shard in shards) == len(loader)
