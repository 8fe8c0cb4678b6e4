"""What a sync must do, worked out on disk: which files are new, changed, gone or unchanged.

The folder's files, the metadata rows and the index's points go into three tables of a temporary SQLite
database and are compared with joins, so memory stays flat however large the catalog is. A file is
unchanged when its point records the same size, modification time (nanoseconds) and fields (class,
metadata) as the file has now; anything else is embedded again. Comparing size and time instead of a
content hash reads no image that did not change: a million-photo folder is checked in the time it
takes to list it. (A file rewritten with the same size within the same nanosecond, or copied over
with its old time preserved, is taken as unchanged: ``--rebuild`` into a new index covers that case.)
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simtune.apps.images.service.catalog.found_file import FoundFile
from simtune.apps.images.service.catalog.problems import Problems

_SCHEMA = """
CREATE TABLE folder (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, fields TEXT);
CREATE TABLE metadata (path TEXT PRIMARY KEY, line INTEGER, fields TEXT);
CREATE TABLE indexed (point_id TEXT PRIMARY KEY, path TEXT, size INTEGER, mtime_ns INTEGER, fields TEXT);
CREATE INDEX indexed_path ON indexed (path);
CREATE TABLE todo (seq INTEGER PRIMARY KEY, path TEXT, change TEXT, payload TEXT);
"""
_CHUNK = 2048


@dataclass
class SyncCounts:
    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0


class SyncPlan:
    """``fields`` (name -> payload type) are the fields compared: the index schema's filter fields."""

    def __init__(self, db_path: str | Path, root: Path, fields: Mapping[str, str]) -> None:
        self.root = root
        self.fields = dict(fields)
        self.db = sqlite3.connect(str(db_path))
        self.db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;" + _SCHEMA)
        self.counts = SyncCounts()

    def add_files(self, files: Iterable[FoundFile]) -> int:
        """Stores the folder's files; returns how many."""
        total = 0
        for chunk in _chunks(files):
            rows = [(f.path, f.size, f.mtime_ns, json.dumps(f.fields)) for f in chunk]
            self.db.executemany("INSERT OR REPLACE INTO folder VALUES (?, ?, ?, ?)", rows)
            total += len(rows)
        return total

    def add_metadata(self, rows: Iterable[tuple[int, str, dict[str, Any]]], problems: Problems) -> None:
        """Stores metadata rows; a second row for the same path is counted and skipped (the first one holds)."""
        for chunk in _chunks(rows):
            for line, path, fields in chunk:
                stored = self.db.execute(
                    "INSERT OR IGNORE INTO metadata VALUES (?, ?, ?)", (path, line, json.dumps(fields))
                )
                if stored.rowcount == 0:
                    first = self.db.execute("SELECT line FROM metadata WHERE path = ?", (path,)).fetchone()[0]
                    problems.add(
                        "metadata rows skipped (the same path again)",
                        f"line {line}: {os.path.relpath(path, self.root)} (first on line {first})",
                    )

    def add_indexed(self, batches: Iterable[list[tuple[str, dict[str, Any]]]]) -> None:
        """Stores the index's points: id, the file they were made from, and their fields."""
        for batch in batches:
            rows = [
                (
                    point_id,
                    str(payload.get("path", "")),
                    payload.get("file_size"),
                    payload.get("file_mtime_ns"),
                    self.canonical(payload),
                )
                for point_id, payload in batch
            ]
            self.db.executemany("INSERT OR REPLACE INTO indexed VALUES (?, ?, ?, ?, ?)", rows)

    def canonical(self, fields: Mapping[str, Any]) -> str:
        """The compared fields as one string: typed as the schema says, so 2012 and 2012.0 compare by type."""
        typed = {}
        for name in sorted(self.fields):
            value = fields.get(name)
            if value is None:
                continue
            kind = self.fields[name]
            try:
                typed[name] = int(value) if kind == "integer" else float(value) if kind == "float" else str(value)
            except (TypeError, ValueError):
                typed[name] = repr(value)
        return json.dumps(typed, sort_keys=True)

    def classify(self, problems: Problems, with_metadata: bool) -> SyncCounts:
        """Fills the to-do list (new and changed files, with the payload each gets) and counts each kind."""
        counts = SyncCounts()
        cursor = self.db.execute(
            """SELECT f.path, f.size, f.mtime_ns, f.fields, m.fields, i.size, i.mtime_ns, i.fields
            FROM folder f LEFT JOIN metadata m ON m.path = f.path LEFT JOIN indexed i ON i.path = f.path
            ORDER BY f.path"""
        )
        todo: list[tuple[str, str, str]] = []
        for path, size, mtime_ns, layout, metadata, indexed_size, indexed_mtime, indexed_fields in cursor:
            if with_metadata and metadata is None:
                problems.add("images without a metadata row", os.path.relpath(path, self.root))
            fields = {**json.loads(layout), **json.loads(metadata or "{}")}
            if indexed_size is None and indexed_fields is None:
                change = "added"
            elif (indexed_size, indexed_mtime, indexed_fields) != (size, mtime_ns, self.canonical(fields)):
                change = "changed"
            else:
                counts.unchanged += 1
                continue
            setattr(counts, change, getattr(counts, change) + 1)
            payload = {
                **fields,
                "path": path,
                "file": os.path.relpath(path, self.root),
                "file_size": size,
                "file_mtime_ns": mtime_ns,
            }
            todo.append((path, change, json.dumps(payload)))
            if len(todo) >= _CHUNK:
                self._store_todo(todo)
        self._store_todo(todo)
        counts.removed = self.db.execute(
            "SELECT COUNT(*) FROM indexed i LEFT JOIN folder f ON f.path = i.path WHERE f.path IS NULL"
        ).fetchone()[0]
        unknown = self.db.execute(
            "SELECT m.line, m.path FROM metadata m LEFT JOIN folder f ON f.path = m.path WHERE f.path IS NULL"
        )
        for line, path in unknown:
            problems.add(
                "metadata rows naming no image in the folder", f"line {line}: {os.path.relpath(path, self.root)}"
            )
        self.db.commit()  # the to-do list is read by the decoding workers' own connections
        self.counts = counts
        return counts

    def removed_ids(self, batch_size: int = 1024) -> Iterator[list[str]]:
        """Ids of points whose file is gone, a batch at a time."""
        cursor = self.db.execute(
            "SELECT i.point_id FROM indexed i LEFT JOIN folder f ON f.path = i.path WHERE f.path IS NULL"
        )
        while batch := cursor.fetchmany(batch_size):
            yield [row[0] for row in batch]

    def todo_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM todo").fetchone()[0]

    def todo_path(self, seq: int) -> str:
        return self.db.execute("SELECT path FROM todo WHERE seq = ?", (seq + 1,)).fetchone()[0]

    def todo_rows(self, seqs: list[int]) -> list[tuple[str, str, dict[str, Any]]]:
        """``(path, change, payload)`` of to-do entries ``seqs`` (0-based), in that order."""
        rows = {}
        for seq in seqs:
            path, change, payload = self.db.execute(
                "SELECT path, change, payload FROM todo WHERE seq = ?", (seq + 1,)
            ).fetchone()
            rows[seq] = (path, change, json.loads(payload))
        return [rows[seq] for seq in seqs]

    def close(self) -> None:
        self.db.close()

    def _store_todo(self, todo: list[tuple[str, str, str]]) -> None:
        self.db.executemany("INSERT INTO todo (path, change, payload) VALUES (?, ?, ?)", todo)
        todo.clear()


def _chunks(items: Iterable[Any]) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= _CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
