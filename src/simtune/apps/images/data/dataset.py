"""The prepared dataset of a run: every usable image with its class, metadata and subset.

``prepare_dataset`` reads the data folder (any layout of ``readers`` or of the preset), keeps one of each
set of identical files (a file listed twice, or byte-identical images under different names: a copy finds
its twin and inflates every metric; copies labelled with different classes are all dropped, since which
label is right is unknown, e.g. 36 such pairs in Stanford Cars), decodes every image once (skipping and
listing the unreadable ones), optionally crops to the bounding boxes, splits the classes and writes
``dataset.json`` + ``split.json`` to the run folder. A later command loads them with ``ImageDataset.load``
instead of touching the data folder again, so a resumed run sees exactly the same images and split. The
dataset also records its title, its noun and its metadata fields (from the preset), so the index, the web
page and the report describe the data whichever command built them.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from simtune.apps.images.data.duplicates import identical_files
from simtune.apps.images.data.image_check import check_images
from simtune.apps.images.data.preset import IMAGES, Preset
from simtune.apps.images.data.readers import READERS, read_collection
from simtune.apps.images.data.run_folder import Run
from simtune.apps.images.data.split import DEFAULT_SEED, ClassSplit, load_or_create_split, split_classes
from simtune.atomic import write_json

TRAIN, VALIDATION, UNSEEN = "train", "validation", "unseen"


@dataclass(frozen=True)
class ImageRecord:
    """One usable image. ``id`` is its position in the dataset (stable across runs on the same run folder);
    ``metadata`` holds the preset's fields for its class (e.g. make and year), free-form."""

    id: int
    path: str
    class_index: int
    class_name: str
    original_split: str | None
    subset: str  # "train", "validation" or "unseen"
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class ImageDataset:
    """Records plus what was left out: ``skipped`` maps unreadable image paths to the reason,
    ``missing`` lists files the labels named but the folder lacks, ``duplicates`` maps each dropped copy
    (a file, or the labels line that listed a file again) to the file kept, ``label_conflicts`` maps each
    image dropped because a byte-identical copy has another class to that copy, ``unread_folders`` lists
    folders of images the layout does not read (nested too deep). ``metadata_fields`` maps each
    metadata field to its payload type (keyword or integer)."""

    data_root: str
    layout: str
    cropped: bool
    records: list[ImageRecord]
    skipped: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    title: str = IMAGES.title
    noun: str = IMAGES.noun
    metadata_fields: dict[str, str] = field(default_factory=dict)
    duplicates: dict[str, str] = field(default_factory=dict)
    label_conflicts: dict[str, str] = field(default_factory=dict)
    unread_folders: list[str] = field(default_factory=list)

    def subset(self, *names: str) -> list[ImageRecord]:
        return [r for r in self.records if r.subset in names]

    def single_image_classes(self, subset: str = UNSEEN) -> list[str]:
        """Classes with one image: gallery-only, since a query needs another image of its class to find."""
        counts = Counter(r.class_name for r in self.subset(subset))
        return sorted(name for name, count in counts.items() if count == 1)

    def save(self, path: Path) -> None:
        write_json(path, asdict(self))

    @classmethod
    def load(cls, path: str | Path) -> ImageDataset:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} not found: run `simtune images train --data PATH --run {path.parent}` first"
            )
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            raw["records"] = [ImageRecord(**r) for r in raw["records"]]
            dataset = cls(**raw)
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise ValueError(
                f"{path} is damaged or was edited by hand ({type(error).__name__}: {error}): "
                "use a new --run folder, or delete the file to prepare the run again"
            ) from None
        paths = Counter(record.path for record in dataset.records)
        repeated = [p for p, count in paths.items() if count > 1]
        if repeated:
            raise ValueError(
                f"{path} lists {len(repeated)} image(s) more than once (e.g. {repeated[0]}), which would inflate "
                "every metric: it was prepared before duplicates were dropped; use a new --run folder"
            )
        return dataset


def _subset(class_index: int, split: ClassSplit) -> str:
    if class_index in split.unseen_classes:
        return UNSEEN
    return VALIDATION if class_index in split.validation_classes else TRAIN


def with_split(dataset: ImageDataset, split: ClassSplit, records: list[ImageRecord] | None = None) -> ImageDataset:
    """``dataset`` (or these of its ``records``, renumbered) with subsets assigned by ``split``: another split
    of the same images, without reading them again."""
    chosen = dataset.records if records is None else records
    renumbered = [replace(record, id=i, subset=_subset(record.class_index, split)) for i, record in enumerate(chosen)]
    return replace(dataset, records=renumbered)


def prepare_dataset(
    data: str | Path,
    run: Run | str | Path,
    seed: int = DEFAULT_SEED,
    crop: bool = False,
    workers: int = 2,
    progress: bool = True,
    preset: Preset = IMAGES,
) -> tuple[ImageDataset, ClassSplit]:
    """Load the run's dataset and split if it has them (same data folder), else build and save them."""
    run = Run.of(run)
    data_root = str(Path(data).expanduser().resolve())
    if run.dataset_file.is_file():
        dataset = ImageDataset.load(run.dataset_file)
        if dataset.data_root != data_root or dataset.cropped != crop:
            raise ValueError(
                f"{run} was prepared from {dataset.data_root} (crop={dataset.cropped}), not {data_root} "
                f"(crop={crop}): use a new --run folder"
            )
        return dataset, run.split()
    collection = read_collection(data_root, preset.readers + READERS)
    new_split = not run.split_file.is_file()  # saved with the dataset, once the data has proved usable
    if new_split:
        split = split_classes(collection.class_names, seed)
    else:
        split = load_or_create_split(run.split_file, collection.class_names, seed)
    duplicates = {line: str(path) for line, path in collection.repeated.items()}
    copies = identical_files(
        [image.path for image in collection.images],
        [image.bbox if crop else None for image in collection.images],
        workers=workers,
        progress=progress,
    )
    groups: dict[int, list[int]] = {}
    for copy, original in copies.items():
        groups.setdefault(original, [original]).append(copy)
    label_conflicts, dropped = {}, set()
    for members in groups.values():
        images = [collection.images[index] for index in members]
        if len({image.class_index for image in images}) == 1:
            duplicates |= {str(image.path): str(images[0].path) for image in images[1:]}
            dropped.update(members[1:])
        else:
            for image, twin in zip(images, images[1:] + images[:1]):
                label_conflicts[str(image.path)] = (
                    f"{collection.class_names[image.class_index]!r}, but byte-identical to {twin.path} "
                    f"({collection.class_names[twin.class_index]!r})"
                )
            dropped.update(members)
    collection.images = [image for index, image in enumerate(collection.images) if index not in dropped]
    jobs = [
        (
            image.path,
            image.bbox if crop else None,
            run.crops_dir / (image.original_split or "all") / image.path.name if crop and image.bbox else None,
        )
        for image in collection.images
    ]
    checked = check_images(jobs, workers=workers, progress=progress)
    metadata = {name: preset.describe(name) for name in collection.class_names}
    records, skipped = [], {}
    for image, result in zip(collection.images, checked):
        if result.error:
            skipped[str(image.path)] = result.error
            continue
        name = collection.class_names[image.class_index]
        records.append(
            ImageRecord(
                id=len(records),
                path=str(result.cropped_to or image.path),
                class_index=image.class_index,
                class_name=name,
                original_split=image.original_split,
                subset=_subset(image.class_index, split),
                metadata=metadata[name],
            )
        )
    if not records and skipped:
        example = next(iter(skipped.items()))
        raise ValueError(f"{data_root}: none of its {len(collection.images)} images could be read, e.g. {example}")
    if not records:
        raise ValueError(
            f"{data_root}: no image left once byte-identical copies labelled with different classes are dropped "
            f"({len(label_conflicts)} images, e.g. {next(iter(label_conflicts))})"
        )
    dataset = ImageDataset(
        data_root,
        collection.layout,
        crop,
        records,
        skipped,
        [str(p) for p in collection.missing],
        title=preset.title,
        noun=preset.noun,
        metadata_fields=dict(preset.fields),
        duplicates=duplicates,
        label_conflicts=label_conflicts,
        unread_folders=[str(p) for p in collection.unread_folders],
    )
    if new_split:
        split.save(run.split_file)
    dataset.save(run.dataset_file)
    return dataset, split
