import torch

from simtune.data import ClassBalancedBatchSampler, GroupCollate, GroupSimilarityDataLoader, SimilarityGroupSample
from simtune.train.indexed_loaders import IndexedCollate, IndexedItems, rebuild_dataloader, uses_own_batch_sampler

SAMPLES = [SimilarityGroupSample(torch.full((2,), float(i)), i % 3) for i in range(12)]


def test_items_read_the_source_only_when_needed():
    assert IndexedItems(SAMPLES, read_source=False)[4] == 4
    assert IndexedItems(SAMPLES, read_source=True)[4] == (4, SAMPLES[4])


def test_rebuilt_loader_gives_the_same_batches_with_their_dataset_indices():
    sampler = ClassBalancedBatchSampler([s.group for s in SAMPLES], 2, 2, seed=1)
    original = GroupSimilarityDataLoader(SAMPLES, batch_sampler=sampler)
    rebuilt = rebuild_dataloader(original, IndexedItems(SAMPLES, True), IndexedCollate(GroupCollate(torch.stack)))
    assert uses_own_batch_sampler(original) and rebuilt.batch_sampler is sampler
    sampler.set_epoch(0)
    expected = list(sampler)
    sampler.set_epoch(0)
    for indices, (features, targets) in zip(expected, rebuilt):
        assert targets["indices"].tolist() == indices
        assert features[:, 0].long().tolist() == indices  # each row is its sample
        assert targets["groups"].tolist() == [i % 3 for i in indices]
    assert not uses_own_batch_sampler(GroupSimilarityDataLoader(SAMPLES, batch_size=4, shuffle=True))
