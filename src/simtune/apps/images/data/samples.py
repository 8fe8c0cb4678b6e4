"""The run's images as group samples for training and evaluation, keyed for the frozen-encoder cache."""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageOps
from torch.utils.data import Dataset

from simtune.apps.images.data.dataset import ImageRecord
from simtune.data import SimilarityGroupSample
from simtune.image_modes import to_rgb

ORIGINAL, MIRROR = "original", "mirror"


class ImageSamples(Dataset):
    """``SimilarityGroupSample(image, class index)`` per record and view. ``views`` lists which views
    follow each other, all records per view: ``original`` (the file) and ``mirror`` (its horizontal mirror
    image, decoded; same class: a car or a bird seen from the other side is still the same class).
    ``class_map`` renumbers classes (e.g. training classes to 0..C-1, as losses with one proxy per class need)."""

    def __init__(
        self,
        records: Sequence[ImageRecord],
        views: Sequence[str] = (ORIGINAL,),
        class_map: dict[int, int] | None = None,
    ):
        if not records:
            raise ValueError("no records to make samples from")
        unknown = set(views) - {ORIGINAL, MIRROR}
        if unknown or not views:
            raise ValueError(f"views must name {ORIGINAL!r} and/or {MIRROR!r}, got {list(views)}")
        self.records = list(records)
        self.views = tuple(views)
        self.class_map = class_map

    def _group(self, record: ImageRecord) -> int:
        return record.class_index if self.class_map is None else self.class_map[record.class_index]

    def __len__(self) -> int:
        return len(self.records) * len(self.views)

    def view_of(self, index: int) -> tuple[ImageRecord, str]:
        """The record and the view of item ``index``."""
        return self.records[index % len(self.records)], self.views[index // len(self.records)]

    def __getitem__(self, index: int) -> SimilarityGroupSample:
        record, view = self.view_of(index)
        if view == ORIGINAL:
            return SimilarityGroupSample(record.path, self._group(record))
        return SimilarityGroupSample(ImageOps.mirror(decoded(record.path)), self._group(record))

    def record_views(self, position: int) -> tuple[SimilarityGroupSample, ...]:
        """Record ``position``'s item in each view, in ``views`` order, from one decode of its file: the
        original as the decoded image, the mirror as its mirror image. What item ``position + k *
        len(records)`` is, with one decode for all views: the mirror's pixels are those of its own decode;
        the original's are those an encoder decodes from the path, except for JPEGs at least twice its
        input size, which it decodes at a reduced scale (a slightly different resampling)."""
        record = self.records[position]
        image = decoded(record.path)
        group = self._group(record)
        return tuple(
            SimilarityGroupSample(image if view == ORIGINAL else ImageOps.mirror(image), group) for view in self.views
        )

    @property
    def groups(self) -> list[int]:
        """Class index per item, without decoding anything (for ``ClassBalancedBatchSampler``)."""
        return [self._group(self.view_of(i)[0]) for i in range(len(self))]

    def cache_key(self, index: int) -> str:
        record, view = self.view_of(index)
        return f"{record.path}|{view}|{self._group(record)}"


class RecordViews(Dataset):
    """Item ``i``: record ``i`` of ``samples`` in every view at once (``ImageSamples.record_views``), so a
    cache fill decodes each file once for all views."""

    def __init__(self, samples: ImageSamples):
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples.records)

    def __getitem__(self, position: int) -> tuple[SimilarityGroupSample, ...]:
        return self.samples.record_views(position)


def decoded(path: str) -> Image.Image:
    """The file's image, upright RGB, read in full (the file closed)."""
    with Image.open(path) as image:
        converted = to_rgb(image)
        converted.load()
        return converted
