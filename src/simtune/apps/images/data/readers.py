"""Read a folder of labelled photos, whatever its layout, into one list of images with class indices.

Two generic layouts, tried in this order by ``read_collection`` after any a preset adds (Stanford Cars'
``.mat`` release): a ``labels.csv`` file (like ``stanford-cars-crop224``) and an ImageFolder (one
sub-folder per class). Files a labels file names but that do not exist are dropped and listed in
``Collection.missing``, so one lost file never aborts a run.
"""

from __future__ import annotations

import csv
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")


@dataclass(frozen=True)
class LabelledImage:
    """One labelled photo. ``bbox`` (x1, y1, x2, y2, pixels, inclusive) is set where the layout has one."""

    path: Path
    class_index: int
    original_split: str | None = None
    bbox: tuple[int, int, int, int] | None = None


@dataclass
class Collection:
    """Everything a layout holds: ``class_names[i]`` names class index ``i`` (0-based, in the layout's order)."""

    root: Path
    layout: str
    class_names: list[str]
    images: list[LabelledImage]
    missing: list[Path] = field(default_factory=list)


class CollectionReader(ABC):
    """One layout: ``matches`` is a cheap look at the folder, ``read`` parses it (and may raise on bad content)."""

    layout: str
    looks_for: str

    @abstractmethod
    def matches(self, root: Path) -> bool: ...

    @abstractmethod
    def read(self, root: Path) -> Collection: ...


class LabelsCsvReader(CollectionReader):
    """``labels.csv`` with columns filename, class_id, class_name (+ optional original_split); paths relative to it."""

    layout = "labels.csv"
    looks_for = "labels.csv with columns filename, class_id, class_name[, original_split]"
    required_columns = ("filename", "class_id", "class_name")

    def matches(self, root: Path) -> bool:
        return (root / "labels.csv").is_file()

    def read(self, root: Path) -> Collection:
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
            images.append(LabelledImage(path, index[int(row["class_id"])], split))
        return Collection(root, self.layout, [names[c] for c in sorted(names)], images, missing)


class ImageFolderReader(CollectionReader):
    """One sub-folder per class (the folder name is the class name) holding image files; other files are ignored."""

    layout = "image-folder"
    looks_for = f"sub-folders (one per class) holding images ({', '.join(IMAGE_SUFFIXES)})"

    @staticmethod
    def _class_images(root: Path) -> dict[str, list[Path]]:
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        found = {
            f.name: sorted(p for p in f.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            for f in folders
        }
        return {name: paths for name, paths in found.items() if paths}

    def matches(self, root: Path) -> bool:
        return bool(self._class_images(root))

    def read(self, root: Path) -> Collection:
        by_class = self._class_images(root)
        images = [LabelledImage(path, i) for i, paths in enumerate(by_class.values()) for path in paths]
        return Collection(root, self.layout, list(by_class), images)


READERS: tuple[CollectionReader, ...] = (LabelsCsvReader(), ImageFolderReader())


def read_collection(root: str | Path, readers: Sequence[CollectionReader] = READERS) -> Collection:
    """Read ``root`` with the first of ``readers`` whose layout it matches; fail naming every layout looked for."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist or is not a folder")
    reader = next((r for r in readers if r.matches(root)), None)
    if reader is None:
        looked = "\n".join(f"  - {r.layout}: {r.looks_for}" for r in readers)
        raise ValueError(
            f"{root}: no recognised layout (it is empty or holds no labelled images). Looked for:\n{looked}"
        )
    collection = reader.read(root)
    if not collection.images:
        missing = (
            f" ({len(collection.missing)} listed files are missing, e.g. {collection.missing[0]})"
            if collection.missing
            else ""
        )
        raise ValueError(f"{root}: the {reader.layout} layout lists no existing images{missing}")
    return collection
