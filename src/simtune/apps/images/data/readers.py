"""Read a folder of labelled car photos, whatever its layout, into one list of images with class indices.

Three layouts, tried in this order by ``read_collection``: a ``labels.csv`` file (like
``stanford-cars-crop224``), the original Stanford Cars release (``.mat`` annotations, as torchvision's
``StanfordCars`` expects) and an ImageFolder (one sub-folder per class). Files a labels file names but
that do not exist are dropped and listed in ``CarCollection.missing``, so one lost file never aborts a run.
"""

from __future__ import annotations

import csv
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")


@dataclass(frozen=True)
class CarImage:
    """One labelled photo. ``bbox`` (x1, y1, x2, y2, pixels, inclusive) is set where the layout has one."""

    path: Path
    class_index: int
    original_split: str | None = None
    bbox: tuple[int, int, int, int] | None = None


@dataclass
class CarCollection:
    """Everything a layout holds: ``class_names[i]`` names class index ``i`` (0-based, in the layout's order)."""

    root: Path
    layout: str
    class_names: list[str]
    images: list[CarImage]
    missing: list[Path] = field(default_factory=list)


class CarsReader(ABC):
    """One layout: ``matches`` is a cheap look at the folder, ``read`` parses it (and may raise on bad content)."""

    layout: str
    looks_for: str

    @abstractmethod
    def matches(self, root: Path) -> bool: ...

    @abstractmethod
    def read(self, root: Path) -> CarCollection: ...


class LabelsCsvReader(CarsReader):
    """``labels.csv`` with columns filename, class_id, class_name (+ optional original_split); paths relative to it."""

    layout = "labels.csv"
    looks_for = "labels.csv with columns filename, class_id, class_name[, original_split]"
    required_columns = ("filename", "class_id", "class_name")

    def matches(self, root: Path) -> bool:
        return (root / "labels.csv").is_file()

    def read(self, root: Path) -> CarCollection:
        labels = root / "labels.csv"
        with labels.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            absent = [c for c in self.required_columns if c not in (reader.fieldnames or [])]
            if absent:
                raise ValueError(f"{labels}: missing column(s) {', '.join(absent)}; found {reader.fieldnames}")
            rows = list(reader)
        names: dict[int, str] = {}
        for line, row in enumerate(rows, start=2):
            filename = Path(row["filename"] or "")
            if filename.is_absolute() or ".." in filename.parts or not filename.parts:
                raise ValueError(
                    f"{labels}, line {line}: filename {row['filename']!r} must be a path inside {root} "
                    "(relative, without '..')"
                )
            try:
                class_id = int(row["class_id"])
            except ValueError:
                raise ValueError(f"{labels}, line {line}: class_id {row['class_id']!r} is not an integer") from None
            if names.setdefault(class_id, row["class_name"]) != row["class_name"]:
                raise ValueError(
                    f"{labels}, line {line}: class_id {class_id} is named both "
                    f"{names[class_id]!r} and {row['class_name']!r}"
                )
        index = {class_id: i for i, class_id in enumerate(sorted(names))}
        images, missing = [], []
        for row in rows:
            path = root / row["filename"]
            if not path.is_file():
                missing.append(path)
                continue
            split = row.get("original_split") or None
            images.append(CarImage(path, index[int(row["class_id"])], split))
        return CarCollection(root, self.layout, [names[c] for c in sorted(names)], images, missing)


class StanfordCarsMatReader(CarsReader):
    """The original release: ``devkit/cars_meta.mat``, ``devkit/cars_train_annos.mat`` + ``cars_train/``,
    ``cars_test_annos_withlabels.mat`` + ``cars_test/`` (directly in the folder or in ``stanford_cars/``,
    as torchvision expects). Both splits are read where present; boxes are kept for optional cropping."""

    layout = "stanford-cars-mat"
    looks_for = (
        "devkit/cars_meta.mat with devkit/cars_train_annos.mat + cars_train/ and/or "
        "cars_test_annos_withlabels.mat + cars_test/ (optionally inside stanford_cars/)"
    )
    splits = (("train", "devkit/cars_train_annos.mat", "cars_train"), ("test", "cars_test_annos_withlabels.mat", "cars_test"))

    @staticmethod
    def _base(root: Path) -> Path:
        return root / "stanford_cars" if (root / "stanford_cars" / "devkit").is_dir() else root

    def matches(self, root: Path) -> bool:
        return (self._base(root) / "devkit" / "cars_meta.mat").is_file()

    def read(self, root: Path) -> CarCollection:
        from scipy.io import loadmat

        base = self._base(root)
        meta = base / "devkit" / "cars_meta.mat"
        class_names = [str(n) for n in np.atleast_1d(loadmat(meta, squeeze_me=True)["class_names"])]
        images, missing, found = [], [], []
        for split, annotations_file, folder in self.splits:
            annotations, image_dir = base / annotations_file, base / folder
            if not annotations.is_file():
                continue
            if not image_dir.is_dir():
                raise FileNotFoundError(f"{annotations} exists but its image folder {image_dir} does not")
            found.append(split)
            for record in np.atleast_1d(loadmat(annotations, squeeze_me=True)["annotations"]):
                image = self._image(annotations, record, image_dir, split, len(class_names))
                (images if image.path.is_file() else missing).append(image if image.path.is_file() else image.path)
        if not found:
            raise FileNotFoundError(f"{base}: found {meta} but no annotations: looked for {self.looks_for}")
        return CarCollection(root, self.layout, class_names, images, missing)

    @staticmethod
    def _image(annotations: Path, record: np.void, image_dir: Path, split: str, num_classes: int) -> CarImage:
        fields = record.dtype.names or ()
        absent = [f for f in ("fname", "class", "bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2") if f not in fields]
        if absent:
            raise ValueError(f"{annotations}: annotations lack field(s) {', '.join(absent)} (need the *_withlabels file)")
        class_id = int(record["class"])
        if not 1 <= class_id <= num_classes:
            raise ValueError(f"{annotations}: {record['fname']} has class {class_id}, outside 1..{num_classes} of cars_meta.mat")
        bbox = tuple(int(record[f"bbox_{c}"]) for c in ("x1", "y1", "x2", "y2"))
        return CarImage(image_dir / str(record["fname"]), class_id - 1, split, bbox)


class ImageFolderReader(CarsReader):
    """One sub-folder per class (the folder name is the class name) holding image files; other files are ignored."""

    layout = "image-folder"
    looks_for = f"sub-folders (one per class) holding images ({', '.join(IMAGE_SUFFIXES)})"

    @staticmethod
    def _class_images(root: Path) -> dict[str, list[Path]]:
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        found = {f.name: sorted(p for p in f.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()) for f in folders}
        return {name: paths for name, paths in found.items() if paths}

    def matches(self, root: Path) -> bool:
        return bool(self._class_images(root))

    def read(self, root: Path) -> CarCollection:
        by_class = self._class_images(root)
        images = [CarImage(path, i) for i, paths in enumerate(by_class.values()) for path in paths]
        return CarCollection(root, self.layout, list(by_class), images)


READERS: tuple[CarsReader, ...] = (LabelsCsvReader(), StanfordCarsMatReader(), ImageFolderReader())


def read_collection(root: str | Path) -> CarCollection:
    """Read ``root`` with the first reader whose layout it matches; fail naming every layout looked for."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist or is not a folder")
    reader = next((r for r in READERS if r.matches(root)), None)
    if reader is None:
        looked = "\n".join(f"  - {r.layout}: {r.looks_for}" for r in READERS)
        raise ValueError(f"{root}: no recognised layout (it is empty or holds no labelled images). Looked for:\n{looked}")
    collection = reader.read(root)
    if not collection.images:
        missing = f" ({len(collection.missing)} listed files are missing, e.g. {collection.missing[0]})" if collection.missing else ""
        raise ValueError(f"{root}: the {reader.layout} layout lists no existing images{missing}")
    return collection
