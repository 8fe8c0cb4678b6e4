"""The run's images as group samples for training and evaluation, keyed for the frozen-encoder cache."""

from __future__ import annotations

from typing import Sequence

from PIL import Image, ImageOps
from torch.utils.data import Dataset

from simtune.apps.images.data.dataset import CarRecord
from simtune.data import SimilarityGroupSample


class CarSamples(Dataset):
    """``SimilarityGroupSample(image path, class index)`` per record; with ``mirrored=True`` the records are
    followed by their horizontal mirror images (a decoded PIL image each), same class: a car seen from the
    other side is still the same model. ``class_map`` renumbers classes (e.g. training classes to 0..C-1,
    as losses with one proxy per class need)."""

    def __init__(self, records: Sequence[CarRecord], mirrored: bool = False, class_map: dict[int, int] | None = None):
        if not records:
            raise ValueError("no records to make samples from")
        self.records = list(records)
        self.mirrored = mirrored
        self.class_map = class_map

    def _group(self, record: CarRecord) -> int:
        return record.class_index if self.class_map is None else self.class_map[record.class_index]

    def __len__(self) -> int:
        return len(self.records) * (2 if self.mirrored else 1)

    def __getitem__(self, index: int) -> SimilarityGroupSample:
        record = self.records[index % len(self.records)]
        if index < len(self.records):
            return SimilarityGroupSample(record.path, self._group(record))
        with Image.open(record.path) as image:
            return SimilarityGroupSample(ImageOps.mirror(image.convert("RGB")), self._group(record))

    @property
    def groups(self) -> list[int]:
        """Class index per item, without decoding anything (for ``ClassBalancedBatchSampler``)."""
        return [self._group(self.records[i % len(self.records)]) for i in range(len(self))]

    def cache_key(self, index: int) -> str:
        record = self.records[index % len(self.records)]
        view = "mirror" if index >= len(self.records) else "original"
        return f"{record.path}|{view}|{self._group(record)}"
