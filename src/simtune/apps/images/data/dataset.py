"""The prepared dataset of a run: every usable image with its class, make/model/year and subset.

``prepare_dataset`` reads the data folder (any layout of ``readers``), decodes every image once (skipping
and listing the unreadable ones), optionally crops to the bounding boxes, splits the classes and writes
``dataset.json`` + ``split.json`` to the run folder. A later command loads them with ``CarsDataset.load``
instead of touching the data folder again, so a resumed run sees exactly the same images and split.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from simtune.apps.cars.atomic import write_json_atomic
from simtune.apps.images.data.image_check import check_images
from simtune.apps.cars.metadata import parse_class_name
from simtune.apps.images.data.readers import read_collection
from simtune.apps.images.run.split import DEFAULT_SEED, ClassSplit, load_or_create_split

DATASET_FILE = "dataset.json"
SPLIT_FILE = "split.json"
TRAIN, UNSEEN = "train", "unseen"


@dataclass(frozen=True)
class CarRecord:
    """One usable image. ``id`` is its position in the dataset (stable across runs on the same run folder)."""

    id: int
    path: str
    class_index: int
    class_name: str
    make: str
    model: str
    year: int | None
    original_split: str | None
    subset: str  # "train" or "unseen"


@dataclass
class CarsDataset:
    """Records plus what was left out: ``skipped`` maps unreadable image paths to the reason,
    ``missing`` lists files the labels named but the folder lacks."""

    data_root: str
    layout: str
    cropped: bool
    records: list[CarRecord]
    skipped: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    def subset(self, name: str) -> list[CarRecord]:
        return [r for r in self.records if r.subset == name]

    def single_image_classes(self, subset: str = UNSEEN) -> list[str]:
        """Classes with one image: gallery-only, since a query needs another image of its class to find."""
        counts = Counter(r.class_name for r in self.subset(subset))
        return sorted(name for name, count in counts.items() if count == 1)

    def save(self, path: Path) -> None:
        write_json_atomic(path, asdict(self))

    @classmethod
    def load(cls, path: str | Path) -> "CarsDataset":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: run `simtune cars train --data PATH --run {path.parent}` first")
        raw = json.loads(path.read_text())
        raw["records"] = [CarRecord(**r) for r in raw["records"]]
        return cls(**raw)


def prepare_dataset(
    data: str | Path, run_dir: str | Path, seed: int = DEFAULT_SEED, crop: bool = False, workers: int = 2,
    progress: bool = True,
) -> tuple[CarsDataset, ClassSplit]:
    """Load the run's dataset and split if it has them (same data folder), else build and save them."""
    run_dir = Path(run_dir)
    data_root = str(Path(data).expanduser().resolve())
    dataset_path = run_dir / DATASET_FILE
    if dataset_path.is_file():
        dataset = CarsDataset.load(dataset_path)
        if dataset.data_root != data_root or dataset.cropped != crop:
            raise ValueError(
                f"{run_dir} was prepared from {dataset.data_root} (crop={dataset.cropped}), not {data_root} "
                f"(crop={crop}): use a new --run folder"
            )
        return dataset, ClassSplit.load(run_dir / SPLIT_FILE)
    collection = read_collection(data_root)
    split = load_or_create_split(run_dir / SPLIT_FILE, collection.class_names, seed)
    train = set(split.train_classes)
    crop_dir = run_dir / "crops"
    jobs = [
        (
            image.path,
            image.bbox if crop else None,
            crop_dir / (image.original_split or "all") / image.path.name if crop and image.bbox else None,
        )
        for image in collection.images
    ]
    checked = check_images(jobs, workers=workers, progress=progress)
    records, skipped = [], {}
    for image, result in zip(collection.images, checked):
        if result.error:
            skipped[str(image.path)] = result.error
            continue
        name = collection.class_names[image.class_index]
        meta = parse_class_name(name)
        records.append(CarRecord(
            id=len(records), path=str(result.cropped_to or image.path), class_index=image.class_index,
            class_name=name, make=meta.make, model=meta.model, year=meta.year,
            original_split=image.original_split, subset=TRAIN if image.class_index in train else UNSEEN,
        ))
    if not records:
        raise ValueError(f"{data_root}: none of its {len(collection.images)} images could be read, e.g. {next(iter(skipped.items()))}")
    dataset = CarsDataset(data_root, collection.layout, crop, records, skipped, [str(p) for p in collection.missing])
    dataset.save(dataset_path)
    return dataset, split
