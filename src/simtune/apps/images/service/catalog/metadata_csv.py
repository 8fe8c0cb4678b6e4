"""A catalog's own metadata: a CSV file with one row per image (its path relative to the folder) and any
columns, each of which becomes a filterable payload field.

Read twice, as a stream, so its size does not matter: the first pass types every column from its values
(integer, float or keyword), the second yields typed rows. A byte-order mark, CRLF line ends and quoted
cells holding commas are plain CSV and read as such. What cannot be used is counted and skipped, never
fatal: a row with the wrong number of cells, a path outside the folder, a value that does not fit its
column's type (a column is numeric when most of its values are numbers; the others are skipped), an
empty or reserved column. Duplicate rows are found when the rows are stored (``SyncPlan``).
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simtune.apps.images.service.catalog.problems import Problems
from simtune.search.schema import INT64_MAX, INT64_MIN

PATH_COLUMNS = ("path", "filename", "file")
# Payload keys every catalog point has, besides its fields: a metadata column may not take them.
RESERVED_FIELDS = ("path", "file", "file_size", "file_mtime_ns")
_INTEGER = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


@dataclass
class MetadataCsv:
    """``fields``: column -> payload type, after the first pass; ``rows()`` is the second."""

    path: Path
    root: Path
    fields: dict[str, str] = field(default_factory=dict)
    path_column: str = "path"
    _columns: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, path: str | Path, root: Path, taken: tuple[str, ...], problems: Problems) -> MetadataCsv:
        """Checks the header and types the columns; ``taken``: field names the layout already gives."""
        table = cls(Path(path), root)
        if not table.path.is_file():
            raise FileNotFoundError(f"metadata file {table.path} does not exist or is not a file")
        with table._open() as reader:
            header = next(reader, None)
            if not header or not any(cell.strip() for cell in header):
                raise ValueError(f"{table.path}: no header row (expected a 'path' column and metadata columns)")
            table._columns = [cell.strip() for cell in header]
            duplicated = sorted({name for name in table._columns if name and table._columns.count(name) > 1})
            if duplicated:
                raise ValueError(f"{table.path}: column(s) {', '.join(duplicated)} appear more than once in the header")
            table.path_column = next((name for name in PATH_COLUMNS if name in table._columns), "")
            if not table.path_column:
                raise ValueError(
                    f"{table.path}: no column named {' or '.join(PATH_COLUMNS)} (each image's path relative to "
                    f"{root}); found {', '.join(table._columns)}"
                )
            kinds = {name: [0, 0, 0] for name in table._columns}  # integers, other numbers, text
            for row in reader:
                if len(row) != len(table._columns):
                    continue  # counted on the second pass
                for name, cell in zip(table._columns, row):
                    value = cell.strip()
                    if value:
                        kinds[name][_kind(value)] += 1
        for name in table._columns:
            if name == table.path_column:
                continue
            if not name or name in RESERVED_FIELDS or name in taken:
                problems.add("metadata columns skipped (empty or reserved name)", repr(name))
                continue
            integers, numbers, texts = kinds[name]
            if integers + numbers + texts == 0:
                problems.add("metadata columns skipped (no values)", repr(name))
            elif integers + numbers > texts:
                table.fields[name] = "float" if numbers else "integer"
            else:
                table.fields[name] = "keyword"
        return table

    def rows(self, problems: Problems) -> Iterator[tuple[int, str, dict[str, Any]]]:
        """``(line number, absolute path, typed fields)`` per usable row; the rest is counted in ``problems``."""
        with self._open() as reader:
            next(reader, None)
            for line, row in enumerate(reader, start=2):
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(self._columns):
                    problems.add(
                        "metadata rows skipped (wrong number of cells)",
                        f"line {line}: {len(row)} cells, the header has {len(self._columns)}",
                    )
                    continue
                cells = dict(zip(self._columns, row))
                relative = cells[self.path_column].strip().replace("\\", "/")
                normal = os.path.normpath(relative) if relative else ""
                if not normal or os.path.isabs(normal) or normal.split(os.sep)[0] == "..":
                    problems.add(
                        f"metadata rows skipped (path empty or outside {self.root})", f"line {line}: {relative!r}"
                    )
                    continue
                fields = {}
                for name, kind in self.fields.items():
                    value = cells[name].strip()
                    if not value:
                        continue
                    typed = _typed(value, kind)
                    if typed is None:
                        problems.add(
                            "metadata values skipped (not a number in a numeric column)",
                            f"line {line}: {name}={value!r}",
                        )
                        continue
                    fields[name] = typed
                yield line, os.path.join(self.root, normal), fields

    def _open(self) -> Any:
        return _CsvRows(self.path)


class _CsvRows:
    """``csv.reader`` over a UTF-8 file (a byte-order mark dropped); a file in another encoding is one error."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> Iterator[list[str]]:
        self.file = self.path.open(newline="", encoding="utf-8-sig")
        return self._rows()

    def _rows(self) -> Iterator[list[str]]:
        try:
            yield from csv.reader(self.file)
        except UnicodeDecodeError as error:
            raise ValueError(f"{self.path} is not UTF-8 text: {error}") from None
        except csv.Error as error:
            raise ValueError(f"{self.path} is not a readable CSV file: {error}") from None

    def __exit__(self, *exc: object) -> None:
        self.file.close()


def _kind(value: str) -> int:
    """0: an integer (within Qdrant's int64), 1: another finite number, 2: text."""
    if _INTEGER.fullmatch(value) and INT64_MIN <= int(value) <= INT64_MAX:
        return 0
    if _FLOAT.fullmatch(value) and math.isfinite(float(value)):
        return 1
    return 2


def _typed(value: str, kind: str) -> str | int | float | None:
    """``value`` as a ``kind`` payload value, or None where it does not fit."""
    if kind == "keyword":
        return value
    found = _kind(value)
    if found == 2 or (kind == "integer" and found != 0):
        return None
    return int(value) if kind == "integer" else float(value)
