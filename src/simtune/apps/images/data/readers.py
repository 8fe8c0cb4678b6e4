"""Read a folder of labelled photos, whatever its layout, into one list of images with class indices.

Two generic layouts, tried in this order by ``read_collection`` after any a preset adds (Stanford Cars'
``.mat`` release): a ``labels.csv`` file (like ``stanford-cars-crop224``) and an ImageFolder (one
sub-folder per class). Files a labels file names but that do not exist are dropped and listed in
``Collection.missing``, so one lost file never aborts a run. A file listed twice is kept once and the
repeat listed in ``Collection.repeated`` (counted twice, each copy would find its twin and inflate every
retrieval metric); listed twice under different classes, it is refused. Image folders one level deeper
than a layout reads are listed in ``Collection.unread_folders``, never silently left out.
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
    repeated: dict[str, Path] = field(default_factory=dict)  # "labels.csv line N" -> the file it repeats
    unread_folders: list[Path] = field(default_factory=list)  # folders holding images the layout does not read


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
    looks_for = "a labels.csv with columns filename, class_id, class_name[, original_split]"
    required_columns = ("filename", "class_id", "class_name")

    def matches(self, root: Path) -> bool:
        return (root / "labels.csv").is_file()

    def read(self, root: Path) -> Collection:
        labels = root / "labels.csv"
        rows = self._rows(labels)
        names: dict[int, str] = {}
        first_line: dict[Path, tuple[int, int]] = {}  # file -> (line, class_id) where it is first listed
        repeated: dict[str, Path] = {}
        kept = []
        for line, row in rows:
            filename = Path(row["filename"])
            if filename.is_absolute() or ".." in filename.parts or not filename.parts:
                raise ValueError(
                    f"{labels}, line {line}: filename {row['filename']!r} must be a path inside {root} "
                    "(relative, without '..')"
                )
            try:
                class_id = int(row["class_id"])
            except ValueError:
                raise ValueError(f"{labels}, line {line}: class_id {row['class_id']!r} is not an integer") from None
            if not row["class_name"].strip():
                raise ValueError(f"{labels}, line {line}: class_name is empty (class_id {class_id})")
            if names.setdefault(class_id, row["class_name"]) != row["class_name"]:
                raise ValueError(
                    f"{labels}, line {line}: class_id {class_id} is named both "
                    f"{names[class_id]!r} and {row['class_name']!r}"
                )
            path = root / filename  # Path() folds "a//b" and "./a" into "a/b", so spellings of one file meet
            if path in first_line:
                earlier, earlier_class = first_line[path]
                if earlier_class != class_id:
                    raise ValueError(
                        f"{labels}, line {line}: {row['filename']} is listed as class {class_id} here and as class "
                        f"{earlier_class} on line {earlier}; one file can only be of one class"
                    )
                repeated[f"{labels.name} line {line}"] = path
                continue
            first_line[path] = (line, class_id)
            kept.append((path, class_id, row.get("original_split") or None))
        index = {class_id: i for i, class_id in enumerate(sorted(names))}
        images, missing = [], []
        for path, class_id, split in kept:
            if not path.is_file():
                missing.append(path)
                continue
            images.append(LabelledImage(path, index[class_id], split))
        return Collection(root, self.layout, [names[c] for c in sorted(names)], images, missing, repeated)

    def _rows(self, labels: Path) -> list[tuple[int, dict[str, str]]]:
        """(line, row) for every row; a row with too few or too many fields, or text that is not UTF-8, is a
        ``ValueError`` naming the file and the line. A UTF-8 byte-order mark (Excel's "CSV UTF-8") is fine."""
        rows = []
        with labels.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            try:
                fields = reader.fieldnames or []
                absent = [c for c in self.required_columns if c not in fields]
                if absent:
                    raise ValueError(f"{labels}: missing column(s) {', '.join(absent)}; found {reader.fieldnames}")
                for row in reader:
                    if None in row or None in row.values():
                        count = len(fields) + len(row.get(None, [])) - sum(v is None for v in row.values())
                        raise ValueError(
                            f"{labels}, line {reader.line_num}: {count} field(s), expected {len(fields)} "
                            f"({', '.join(fields)}); a value holding a comma needs quotes"
                        )
                    rows.append((reader.line_num, row))
            except UnicodeDecodeError:
                line, byte = _first_non_utf8(labels)
                raise ValueError(
                    f"{labels}, line {line}: not UTF-8 text (byte 0x{byte:02x}); save it as UTF-8 (in Excel: CSV UTF-8)"
                ) from None
            except csv.Error as error:
                raise ValueError(f"{labels}, line {reader.line_num}: {error}") from None
        return rows


class ImageFolderReader(CollectionReader):
    """One sub-folder per class (the folder name is the class name) holding image files; other files are ignored."""

    layout = "image-folder"
    looks_for = f"one sub-folder per class holding {'/'.join(s.lstrip('.') for s in IMAGE_SUFFIXES)} images"

    @staticmethod
    def _class_images(root: Path) -> dict[str, list[Path]]:
        found = {folder.name: _images_in(folder) for folder in _folders_in(root)}
        return {name: paths for name, paths in found.items() if paths}

    def matches(self, root: Path) -> bool:
        return bool(self._class_images(root))

    def read(self, root: Path) -> Collection:
        by_class = self._class_images(root)
        images = [LabelledImage(path, i) for i, paths in enumerate(by_class.values()) for path in paths]
        deeper = [inner for outer in _folders_in(root) for inner in _folders_in(outer) if _images_in(inner)]
        return Collection(root, self.layout, list(by_class), images, unread_folders=deeper)


def _first_non_utf8(path: Path) -> tuple[int, int]:
    """The line and value of the first byte of ``path`` that is not UTF-8 (read line by line)."""
    with path.open("rb") as f:
        for line, raw in enumerate(f, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as error:
                return line, raw[error.start]
    return 0, 0


def _folders_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


READERS: tuple[CollectionReader, ...] = (LabelsCsvReader(), ImageFolderReader())


def read_collection(root: str | Path, readers: Sequence[CollectionReader] = READERS) -> Collection:
    """Read ``root`` with the first of ``readers`` whose layout it matches; fail in one line naming those sought."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist or is not a folder")
    reader = next((r for r in readers if r.matches(root)), None)
    if reader is None:
        looked = "; ".join(f"{r.layout} ({r.looks_for})" for r in readers)
        deeper = next((inner for outer in _folders_in(root) for inner in _folders_in(outer) if _images_in(inner)), None)
        hint = f" Images lie one level deeper, e.g. in {deeper}: point at {deeper.parent} instead?" if deeper else ""
        raise ValueError(f"{root}: no recognised layout (empty, or no labelled images); looked for {looked}.{hint}")
    collection = reader.read(root)
    if not collection.images:
        missing = (
            f" ({len(collection.missing)} listed files are missing, e.g. {collection.missing[0]})"
            if collection.missing
            else ""
        )
        raise ValueError(f"{root}: the {reader.layout} layout lists no existing images{missing}")
    return collection
