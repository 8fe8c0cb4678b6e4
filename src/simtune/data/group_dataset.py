"""Turn a plain ``(object, label)`` dataset (torchvision ImageFolder, say) into a group dataset."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch.utils.data import Dataset

from simtune.data.samples import SimilarityGroupSample


class GroupDataset(Dataset):
    """``dataset[i] = (obj, label)`` becomes ``SimilarityGroupSample(obj, int(label))``.

    ``groups`` (one id per item, for ``ClassBalancedBatchSampler``) is read from the wrapped dataset's
    ``targets`` when it has them (ImageFolder, CIFAR) so no image is decoded; otherwise pass ``groups``.
    """

    def __init__(self, dataset: Dataset, groups: Sequence[int] | None = None):
        self.dataset = dataset
        if groups is None and hasattr(dataset, "targets"):
            groups = dataset.targets
        if groups is not None and len(groups) != len(dataset):
            raise ValueError(f"groups has {len(groups)} entries but the dataset has {len(dataset)} items")
        self._groups = None if groups is None else [int(group) for group in groups]

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> SimilarityGroupSample:
        item = self.dataset[index]
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise TypeError(f"GroupDataset expects items (object, label); item {index} is {type(item).__name__}")
        obj, label = item
        return SimilarityGroupSample(obj=obj, group=int(label))

    @property
    def groups(self) -> list[int]:
        """One group id per item; without ``targets`` or ``groups=`` this loads every item once."""
        if self._groups is None:
            from tqdm.auto import tqdm  # training extra; only needed on this slow path

            self._groups = [int(self.dataset[i][1]) for i in tqdm(range(len(self)), desc="reading labels")]
        return self._groups


def group_labels(dataset: Any) -> list[int]:
    """Group ids of a dataset of ``SimilarityGroupSample`` (for building a class-balanced sampler).

    Uses ``dataset.groups`` when present (``GroupDataset``), otherwise reads every sample.
    """
    if hasattr(dataset, "groups"):
        return list(dataset.groups)
    from tqdm.auto import tqdm  # training extra; only needed on this slow path

    labels = []
    for index in tqdm(range(len(dataset)), desc="reading groups", disable=isinstance(dataset, (list, tuple))):
        sample = dataset[index]
        if not isinstance(sample, SimilarityGroupSample):
            raise TypeError(f"item {index} is {type(sample).__name__}, expected SimilarityGroupSample")
        labels.append(int(sample.group))
    return labels
