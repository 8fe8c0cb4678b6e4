import pytest
from PIL import Image
from torchvision.datasets import ImageFolder

from simtune.data import GroupDataset, GroupSimilarityDataLoader, SimilarityGroupSample, group_labels


class CountingDataset:
    """A plain (object, label) dataset that records which items were loaded."""

    def __init__(self, labels):
        self.labels, self.loaded = labels, []

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        self.loaded.append(index)
        return f"object{index}", self.labels[index]


def test_wraps_plain_pairs_into_group_samples():
    dataset = GroupDataset(CountingDataset([3, 1, 3]))
    assert dataset[2] == SimilarityGroupSample(obj="object2", group=3)
    assert len(dataset) == 3 and group_labels(dataset) == [3, 1, 3]


def test_image_folder_groups_come_from_targets_without_decoding(tmp_path):
    for name in ["audi", "bmw"]:
        (tmp_path / name).mkdir()
        for i in range(2):
            Image.new("RGB", (4, 4), color=(i * 80, 0, 0)).save(tmp_path / name / f"{i}.png")
    folder = ImageFolder(tmp_path)
    dataset = GroupDataset(folder)
    assert dataset.groups == [0, 0, 1, 1]
    features, targets = next(iter(GroupSimilarityDataLoader(dataset, batch_size=4)))
    assert [image.size for image in features] == [(4, 4)] * 4 and targets["groups"].tolist() == [0, 0, 1, 1]


def test_explicit_groups_avoid_loading_and_must_match_length():
    source = CountingDataset([0, 1])
    assert GroupDataset(source, groups=[5, 6]).groups == [5, 6] and source.loaded == []
    with pytest.raises(ValueError, match="groups has 3 entries but the dataset has 2"):
        GroupDataset(source, groups=[0, 1, 2])


def test_items_that_are_not_pairs_are_named():
    with pytest.raises(TypeError, match="item 0"):
        GroupDataset(["just an object"])[0]
