import pytest
import torch

from simtune.data.samples import SimilarityGroupSample
from simtune.eval import GroupSampler

DATASET = [SimilarityGroupSample(obj=f"x{i}", group=i % 3) for i in range(30)]


def test_all_objects_query_the_whole_dataset_excluding_themselves():
    task = GroupSampler().sample(DATASET)
    assert task.query_rows.tolist() == list(range(30)) == task.query_gallery_index.tolist()
    assert task.gallery_rows.tolist() == list(range(30))
    assert task.groups.tolist() == [i % 3 for i in range(30)]


def test_sampling_is_seeded_and_keeps_the_full_gallery():
    first, again, other = (GroupSampler(5, seed=seed).sample(DATASET) for seed in (7, 7, 8))
    assert torch.equal(first.query_rows, again.query_rows)
    assert not torch.equal(first.query_rows, other.query_rows)
    assert len(first.query_rows) == 5 and len(first.gallery_rows) == 30
    assert torch.equal(first.query_gallery_index, first.query_rows)


def test_a_separate_gallery_has_no_self_exclusion():
    task = GroupSampler().sample(DATASET[:4], DATASET[4:])
    assert task.gallery_rows.tolist() == list(range(4, 30))
    assert task.query_gallery_index.tolist() == [-1] * 4


@pytest.mark.parametrize("size", [0, -2, 2.5])
def test_rejects_bad_sample_size(size):
    with pytest.raises(ValueError, match="sample_size"):
        GroupSampler(size)


def test_rejects_an_empty_dataset():
    with pytest.raises(ValueError, match="dataset is empty"):
        GroupSampler().sample([])
