"""The image files of a catalog folder, as a stream: a plain folder (searched recursively), class folders
or a labels file.

A plain folder is walked with ``os.scandir`` one folder at a time, so a million photos cost a million
small records passing through, never a list of them. Hidden files and folders (a name starting with
``.``) are not entered: that is where an index or a run folder kept inside the catalog would hide.
Folder symlinks are not followed (no loops); file symlinks are. Files with other suffixes are counted.

A labelled layout (``labels.csv`` or one sub-folder per class, read as ``simtune images train`` reads
it) gives each file its class name, the preset's fields for that class, and the data set's split.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from simtune.apps.images.data.preset import Preset
from simtune.apps.images.data.readers import READERS, Collection, ImageFolderReader, read_collection
from simtune.apps.images.service.catalog.found_file import FoundFile
from simtune.apps.images.service.catalog.problems import Problems

CATALOG_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
PLAIN = "plain"
LABELLED_FIELDS = ("class_name", "split", "subset")


def detect_layout(root: Path, preset: Preset, plain: bool = False) -> Collection | None:
    """The labelled layout of ``root`` (read, as a ``Collection``), or None for a plain folder.

    Class folders count only when ``root`` itself holds no image: a folder of photos that also has
    sub-folders is a plain catalog, not classes with stray files beside them."""
    if plain:
        return None
    readers = preset.readers + READERS
    labelled = [reader for reader in readers if reader.layout != ImageFolderReader.layout]
    if any(reader.matches(root) for reader in labelled):
        return read_collection(root, readers)  # a damaged labels file is an error, not a plain folder
    if not _holds_images(root) and ImageFolderReader().matches(root):
        return read_collection(root, readers)
    return None


def layout_fields(preset: Preset, layout: Collection | None) -> dict[str, str]:
    """The payload fields a layout gives every file, with their types (none for a plain folder)."""
    if layout is None:
        return {}
    return {"class_name": "keyword", **preset.fields, "split": "keyword", "subset": "keyword"}


def walk_plain(root: Path, problems: Problems) -> Iterator[FoundFile]:
    """Every image file under ``root`` (recursively), as found; other files are counted in ``problems``."""
    folders = [str(root)]
    while folders:
        folder = folders.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.name.startswith("."):
                        continue
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            folders.append(entry.path)
                        elif not entry.is_file():
                            continue
                        elif not entry.name.lower().endswith(CATALOG_SUFFIXES):
                            problems.add(f"files that are not {'/'.join(CATALOG_SUFFIXES)} images", entry.path)
                        else:
                            stat = entry.stat()
                            yield FoundFile(entry.path, stat.st_size, stat.st_mtime_ns)
                    except OSError as error:
                        problems.add("files that cannot be read", f"{entry.path}: {error.strerror or error}")
        except OSError as error:
            problems.add("folders that cannot be read", f"{folder}: {error.strerror or error}")


def walk_labelled(
    collection: Collection, preset: Preset, subsets: dict[str, str], problems: Problems
) -> Iterator[FoundFile]:
    """Every existing file of a labelled layout with its class fields; ``subsets`` maps a path to what a
    training run did with its class (train/validation/unseen), where the run knows it."""
    described: dict[str, dict[str, Any]] = {}
    for missing in collection.missing:
        problems.add("listed files that do not exist", str(missing))
    for image in collection.images:
        name = collection.class_names[image.class_index]
        if name not in described:
            described[name] = {"class_name": name, **preset.describe(name)}
        path = str(image.path)
        try:
            stat = os.stat(path)
        except OSError as error:
            problems.add("listed files that cannot be read", f"{path}: {error.strerror or error}")
            continue
        fields = {**described[name], "split": image.original_split, "subset": subsets.get(path)}
        yield FoundFile(path, stat.st_size, stat.st_mtime_ns, {k: v for k, v in fields.items() if v is not None})


def _holds_images(folder: Path) -> bool:
    with os.scandir(folder) as entries:
        return any(
            entry.name.lower().endswith(CATALOG_SUFFIXES) and not entry.name.startswith(".") and entry.is_file()
            for entry in entries
        )
