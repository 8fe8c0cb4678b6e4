"""A resumable update of an embedded index: the staged copy outlives a killed writer.

``EdgeIndex.write`` stages a copy under a name tied to its process, so a writer killed half-way loses
everything it did. An update that may run for hours (a large catalog) instead works in ``.<name>.update``
beside the index: created once (a copy of the live index, itself staged so a half-made copy is never
used), then written batch by batch, each batch flushed to disk (``EdgeIndex.flush``: the engine keeps no
write-ahead log, so an unflushed batch is what ``kill -9`` loses). The next update with the same schema
continues in that folder; the caller compares what it holds with what it should hold (point payloads
carry what they were made from), so nothing is done twice and nothing is lost.

Readers never see the staged copy: when the update finishes, it is optimized, its point count and id
checksum are recorded, and it replaces the live index in one rename (``simtune.atomic``). A running
server holds the live index open and refuses the writer (checked before the work and again before the
swap), so a served index never changes under its server.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from simtune.atomic import replace_directory, swap_in_directory, write_text
from simtune.search import edge_storage
from simtune.search.edge_index import (
    CHECKSUM_KEY,
    FILES_KEY,
    POINTS_KEY,
    SCHEMA_FILE,
    SHARD_DIR,
    STORAGE_KEY,
    WRITE_MARGIN_BYTES,
    EdgeIndex,
    _check_files,
    _check_not_open,
    _read_record,
    read_schema,
    read_storage,
)
from simtune.search.errors import IndexUnavailableError, SearchError
from simtune.search.schema import IndexSchema
from simtune.search.storage import StorageOptions

UPDATE_SUFFIX = ".update"


def pending_update(path: str | Path) -> Path:
    """Where an unfinished update of the index at ``path`` is kept."""
    path = Path(path)
    return path.with_name(f".{path.name}{UPDATE_SUFFIX}")


@contextmanager
def edge_update(
    path: str | Path,
    schema: IndexSchema,
    storage: StorageOptions | None = None,
    indexing_threshold_kb: int = 10_000,
    rebuild: bool = False,
    expected_points: int = 0,
) -> Iterator[tuple[EdgeIndex, bool]]:
    """Yields ``(index, resumed)``: a writable staged copy of the index at ``path`` (created with ``storage``
    if there is none) and whether it continues an unfinished update. On success it replaces ``path``; on an
    exception it is kept for the next update. Another model, other filter fields or other storage options
    than the live index's are an error before anything is copied, unless ``rebuild``: then the update starts
    empty (and with ``storage``), and replaces whatever index was there. ``expected_points``: how many points
    the index will hold, for the free-space check made before anything is written."""
    path = Path(path)
    live = (path / SCHEMA_FILE).exists()
    if live and rebuild:
        _check_not_open(path)
        shutil.rmtree(pending_update(path), ignore_errors=True)
        live = False
    elif live:
        read_schema(path).check_same_model(schema)
        built_with = read_storage(path)
        if storage is not None and storage != built_with:
            raise IndexUnavailableError(
                f"the index at {path} stores {built_with.describe()}, not {storage.describe()}: "
                "index into a new --index folder to change that"
            )
        storage = built_with
        _check_not_open(path)
        _check_files(path, _read_record(path))  # extending a damaged index would bless the damage
    elif not (path / SCHEMA_FILE).exists() and path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise IndexUnavailableError(f"{path} exists and is not a simtune index; refusing to replace it")
    pending = pending_update(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    copied = edge_storage.allocated_bytes(path) if live else 0
    added = max(expected_points - (_read_record(path).get(POINTS_KEY, 0) if live else 0), 0)
    edge_storage.check_free_space(
        path.parent, copied + added * (2 * 4 * schema.embedding_size + 2048) + WRITE_MARGIN_BYTES
    )
    index = _continue(pending, schema)
    resumed = index is not None
    if index is None:
        with replace_directory(pending) as staging:
            if live:
                edge_storage.copy_tree_sparse(path, staging)
                record = _read_record(staging)
                for key in (POINTS_KEY, CHECKSUM_KEY, FILES_KEY):  # recorded again when the update finishes
                    record.pop(key, None)
                write_text(staging / SCHEMA_FILE, json.dumps(record, indent=2, sort_keys=True))
            else:
                EdgeIndex.create(staging, schema, indexing_threshold_kb, storage).close()
        index = EdgeIndex._open_in_place(pending, schema)
    try:
        yield index, resumed
        index.optimize()
        record = {
            **json.loads(schema.to_json()),
            STORAGE_KEY: _read_record(pending).get(STORAGE_KEY, StorageOptions().to_dict()),
            POINTS_KEY: index.count(),
            CHECKSUM_KEY: index.id_checksum(),
        }
    finally:
        index.close()
    record[FILES_KEY] = edge_storage.manifest(pending / SHARD_DIR)
    write_text(pending / SCHEMA_FILE, json.dumps(record, indent=2, sort_keys=True))
    if (path / SCHEMA_FILE).exists():
        _check_not_open(path)  # again: a server may have started while the update ran
    swap_in_directory(pending, path)
    shutil.rmtree(pending, ignore_errors=True)  # the old index, after the swap


def _continue(pending: Path, schema: IndexSchema) -> EdgeIndex | None:
    """The unfinished update at ``pending`` if it is one for ``schema``; anything else there is removed.

    A finished one (its point count recorded) is the old index a writer swapped out and was killed before
    deleting, so it is removed too."""
    if not pending.exists():
        return None
    try:
        if POINTS_KEY not in _read_record(pending):
            read_schema(pending).check_same_model(schema)
            return EdgeIndex._open_in_place(pending, schema)
    except SearchError as error:
        if "open in another process" in str(error):
            raise IndexUnavailableError(
                f"another `index` is updating {pending.parent}: wait for it to finish"
            ) from error
    shutil.rmtree(pending)
    return None
