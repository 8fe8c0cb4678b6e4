"""The embedded default backend: Qdrant's engine in-process (``qdrant-edge-py``), persisted in a folder.

Layout: ``DIR/simtune_index.json`` (the ``IndexSchema``, plus the point count, a checksum of the
point ids and a manifest of every shard file as written) and ``DIR/shard/`` (the Qdrant Edge shard).
Writers go through ``EdgeIndex.write``, which works on a staged copy and swaps it in only when the whole
write succeeded, so a failed or interrupted re-index leaves the existing index as it was. ``open``
checks every file against the manifest (size and content checksum) and the point count before it
answers, so a damaged shard is refused instead of answering from what is left, and it never writes to
``DIR`` (see ``edge_storage``): a read-only folder or a full disk can still be searched.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from simtune.atomic import replace_directory
from simtune.search import edge_storage
from simtune.search.base import SearchHit, VectorIndex
from simtune.search.errors import IndexUnavailableError, UnknownPointError
from simtune.search.schema import IndexSchema
from simtune.search.storage import INT8_QUANTILE, RESCORE_OVERSAMPLING, StorageOptions, search_width

SCHEMA_FILE = "simtune_index.json"
POINTS_KEY, CHECKSUM_KEY, FILES_KEY = "points", "point_id_checksum", "files"
SHARD_DIR = "shard"
WRITE_MARGIN_BYTES = 64 * 2**20  # the engine's own files (segment headers, flags, trackers) and a safety margin
_DISTANCES = {
    "cosine": qe.Distance.Cosine,
    "dot_product": qe.Distance.Dot,
    "euclidean": qe.Distance.Euclid,
    "manhattan": qe.Distance.Manhattan,
}
_FIELD_TYPES = {
    "keyword": qe.PayloadSchemaType.Keyword,
    "integer": qe.PayloadSchemaType.Integer,
    "float": qe.PayloadSchemaType.Float,
}
STORAGE_KEY = "storage"


class EdgeIndex(VectorIndex):
    """Open with ``EdgeIndex.open(dir, expect=schema)``; create or extend with ``EdgeIndex.write``.

    HNSW is built by ``optimize()`` once a segment exceeds ``indexing_threshold_kb``; smaller
    collections are searched exactly (Qdrant's own planner), as is any query with ``exact=True``.
    """

    def __init__(self, path: Path, shard: qe.EdgeShard, schema: IndexSchema, lock: int) -> None:
        self.path = path
        self.schema = schema
        self._shard = shard
        self._lock = lock  # on the index folder: shared while searched, exclusive while written in place
        self._view: tuple[Path, int] | None = None  # the scratch view a read-only index is opened through

    @classmethod
    def create(
        cls,
        path: str | Path,
        schema: IndexSchema,
        indexing_threshold_kb: int = 10_000,
        storage: StorageOptions | None = None,
    ) -> EdgeIndex:
        """A new, empty index at ``path``; ``storage``: int8 quantization, on-disk vectors (``StorageOptions``)."""
        path = Path(path)
        storage = storage or StorageOptions()
        on_disk = storage.on_disk or None
        if (path / SCHEMA_FILE).exists():
            raise IndexUnavailableError(f"an index already exists at {path}")
        path.mkdir(parents=True, exist_ok=True)
        lock = edge_storage.lock_folder(path, exclusive=True, busy_message=_busy(path, "stop it first"))
        config = qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(
                size=schema.embedding_size, distance=_DISTANCES[schema.distance], on_disk=on_disk
            ),
            hnsw_config=qe.HnswIndexConfig(
                m=16, ef_construct=128, full_scan_threshold=indexing_threshold_kb, on_disk=on_disk
            ),
            optimizers=qe.EdgeOptimizersConfig(indexing_threshold=indexing_threshold_kb),
            quantization_config=(
                qe.ScalarQuantizationConfig(qe.ScalarType.Int8, quantile=INT8_QUANTILE, always_ram=True)
                if storage.quantized
                else None
            ),
            on_disk_payload=on_disk,
            wal_enabled=False,  # writers work on a staged copy and flush before it is swapped in: no log needed
        )
        try:
            shard = qe.EdgeShard.create(str(path / SHARD_DIR), config)
        except BaseException:
            os.close(lock)
            raise
        index = cls(path, shard, schema, lock)
        for name, kind in schema.filter_fields.items():
            shard.update(qe.UpdateOperation.create_field_index(name, _FIELD_TYPES[kind]))
        shard.flush()
        (path / SCHEMA_FILE).write_text(
            json.dumps({**json.loads(schema.to_json()), STORAGE_KEY: storage.to_dict()}, indent=2, sort_keys=True)
        )
        return index

    @classmethod
    def open(cls, path: str | Path, expect: IndexSchema | None = None, search_threads: int | None = None) -> EdgeIndex:
        """Opens an existing index for searching; with ``expect``, one built with another model is an error.

        Every file is checked against the manifest recorded when the index was built, and the engine
        opens a private view of it, so nothing under ``path`` is written (see ``edge_storage``).
        ``search_threads`` bounds the engine's search pool (segments are searched in parallel).
        """
        path = Path(path)
        schema = read_schema(path)
        recorded = _read_record(path)
        if expect is not None:
            schema.check_same_model(expect)
        lock = edge_storage.lock_folder(
            path, exclusive=False, busy_message=_busy(path, "stop it, or query that server over HTTP")
        )
        view = None
        try:
            _check_files(path, recorded)
            view = edge_storage.make_view(path / SHARD_DIR)
            config = None
            if search_threads is not None:
                vectors = qe.EdgeVectorParams(size=schema.embedding_size, distance=_DISTANCES[schema.distance])
                config = qe.EdgeConfig(vectors=vectors, max_search_threads=search_threads)
            index = cls(path, _load_shard(view[0], path, config), schema, lock)
        except BaseException:
            if view is not None:
                edge_storage.remove_view(*view)
            os.close(lock)
            raise
        index._view = view
        if POINTS_KEY in recorded:
            try:  # the files cover the point ids; indexes written before the manifest check the ids by value
                checksum = None if FILES_KEY in recorded else recorded.get(CHECKSUM_KEY)
                index._check_integrity(recorded[POINTS_KEY], checksum)
            except BaseException:
                index.close()
                raise
        return index

    @classmethod
    @contextmanager
    def write(
        cls,
        path: str | Path,
        schema: IndexSchema,
        indexing_threshold_kb: int = 10_000,
        expected_points: int = 0,
        storage: StorageOptions | None = None,
    ) -> Iterator[EdgeIndex]:
        """Yields a writable staged copy of the index at ``path`` (created with ``storage`` if missing).

        On success the copy is optimized (HNSW built), its files recorded in the manifest, and it
        replaces ``path``; on any exception it is discarded and ``path`` is untouched. The model check,
        the integrity check of an index being extended and the free-space check (for the copy and
        ``expected_points`` new points) happen before anything is copied.
        """
        path = Path(path)
        existing = (path / SCHEMA_FILE).exists()
        if existing:
            read_schema(path).check_same_model(schema)
            _check_not_open(path)  # a running server keeps answering from a folder swapped away under it
            _check_files(path, _read_record(path))  # extending a damaged index would bless the damage
        elif path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise IndexUnavailableError(f"{path} exists and is not a simtune index; refusing to replace it")
        path.parent.mkdir(parents=True, exist_ok=True)
        copied = edge_storage.allocated_bytes(path) if existing else 0
        # the points' vectors twice (appendable segment, then the optimized one), payloads, graph, a margin
        new_points = expected_points * (2 * 4 * schema.embedding_size + 2048) + WRITE_MARGIN_BYTES
        edge_storage.check_free_space(path.parent, copied + new_points)
        with replace_directory(path) as staging:
            if existing:
                edge_storage.copy_tree_sparse(path, staging)
                index = cls._open_in_place(staging, schema)
            else:
                index = cls.create(staging, schema, indexing_threshold_kb, storage)
            try:
                yield index
                index.optimize()
                points, checksum = index.count(), index.id_checksum()
            finally:
                index.close()
            record = {
                **json.loads(schema.to_json()),
                STORAGE_KEY: _read_record(staging).get(STORAGE_KEY, StorageOptions().to_dict()),
                POINTS_KEY: points,
                CHECKSUM_KEY: checksum,
                FILES_KEY: edge_storage.manifest(staging / SHARD_DIR),
            }
            (staging / SCHEMA_FILE).write_text(json.dumps(record, indent=2, sort_keys=True))
            if (path / SCHEMA_FILE).exists():
                _check_not_open(path)  # again: a server may have started while this write ran

    @classmethod
    def _open_in_place(cls, path: Path, schema: IndexSchema) -> EdgeIndex:
        """The staged copy a writer extends: opened in place, for writing."""
        lock = edge_storage.lock_folder(path, exclusive=True, busy_message=_busy(path, "stop it first"))
        try:
            return cls(path, _load_shard(path / SHARD_DIR, path, None), schema, lock)
        except BaseException:
            os.close(lock)
            raise

    def verify_files(self) -> None:
        """``IndexUnavailableError`` if a file of the index went missing or changed size since it was opened
        (names and sizes only: cheap enough for every health check)."""
        recorded = _read_record(self.path)
        if FILES_KEY in recorded:
            problem = edge_storage.manifest_problem(self.path / SHARD_DIR, recorded[FILES_KEY], contents=False)
            if problem is not None:
                raise _damaged(self.path, problem)

    def flush(self) -> None:
        """Makes every completed write durable (the engine keeps no write-ahead log here, see ``create``)."""
        with self._engine_errors():
            self._shard.flush()

    def optimize(self) -> None:
        """Merges segments and builds HNSW where the indexing threshold is reached."""
        with self._engine_errors():
            self._shard.optimize()
            self._shard.flush()

    @contextmanager
    def _engine_errors(self) -> Iterator[None]:
        """The engine's bare exceptions while writing become one ``IndexUnavailableError`` line."""
        try:
            yield
        except Exception as error:
            if isinstance(error, ValueError):  # already one of ours
                raise
            raise IndexUnavailableError(f"writing the index at {self.path} failed: {error}") from error

    @property
    def segment_count(self) -> int:
        return self._shard.info().segments_count

    @property
    def indexed_count(self) -> int:
        """Points covered by an HNSW graph (0 means every search is a full scan)."""
        return self._shard.info().indexed_vectors_count

    def count(self) -> int:
        return self._shard.count(qe.CountRequest(exact=True))

    def id_checksum(self, batch_size: int = 4096) -> str:
        """The sum of every point id (as a 128-bit UUID) modulo 2**128: order-free, and reads ids only."""
        total, offset = 0, None
        while True:
            records, offset = self._shard.scroll(
                qe.ScrollRequest(offset=offset, limit=batch_size, with_payload=False, with_vector=False)
            )
            total += sum(uuid.UUID(str(record.id)).int for record in records)
            if offset is None:
                return f"{total % 2**128:032x}"

    def _check_integrity(self, points: int, checksum: str | None) -> None:
        count = self.count()
        if count != points or (checksum is not None and self.id_checksum() != checksum):
            found = f"{count} points" if count != points else f"{count} points, but not the ones"
            raise _damaged(self.path, f"it holds {found} of the {points} written when it was built")

    def iter_payloads(self, batch_size: int = 1024) -> Iterator[list[tuple[str, dict[str, Any]]]]:
        """Every point's id and payload, a batch at a time (no vectors are read)."""
        offset = None
        while True:
            records, offset = self._shard.scroll(
                qe.ScrollRequest(offset=offset, limit=batch_size, with_payload=True, with_vector=False)
            )
            yield [(str(record.id), dict(record.payload or {})) for record in records]
            if offset is None:
                return

    def export_vectors(self, batch_size: int = 1024) -> tuple[list[str], np.ndarray]:
        """Every point's id and stored vector (normalized, for cosine), e.g. to compare against another engine."""
        ids: list[str] = []
        vectors: list[list[float]] = []
        offset = None
        while True:
            records, offset = self._shard.scroll(
                qe.ScrollRequest(offset=offset, limit=batch_size, with_payload=False, with_vector=True)
            )
            ids += [str(r.id) for r in records]
            vectors += [r.vector for r in records]
            if offset is None:
                break
        return ids, np.asarray(vectors, dtype=np.float32).reshape(len(ids), self.schema.embedding_size)

    def close(self) -> None:
        if self._lock < 0:
            return
        self._shard.close()
        if self._view is not None:
            edge_storage.remove_view(*self._view)
            self._view = None
        os.close(self._lock)
        self._lock = -1

    def _upsert(self, ids: list[str], vectors: np.ndarray, payloads: list[dict[str, Any]]) -> None:
        points = [qe.Point(i, v.tolist(), p) for i, v, p in zip(ids, vectors, payloads)]
        with self._engine_errors():
            self._shard.update(qe.UpdateOperation.upsert_points(points))

    def _search(self, vector: np.ndarray, k: int, filter: dict[str, str | int | float], exact: bool) -> list[SearchHit]:
        request = qe.QueryRequest(
            limit=k,
            query=qe.Query.Nearest(vector.tolist()),
            filter=_to_filter(filter),
            with_payload=True,
            params=qe.SearchParams(
                hnsw_ef=search_width(k),
                exact=exact,
                quantization=qe.QuantizationSearchParams(rescore=True, oversampling=RESCORE_OVERSAMPLING),
            ),
        )
        return [SearchHit(str(p.id), float(p.score), dict(p.payload or {})) for p in self._shard.query(request)]

    def _get(self, point_id: str) -> tuple[np.ndarray, dict[str, Any]]:
        records = self._shard.retrieve([point_id], True, True)
        if not records:
            raise UnknownPointError(f"no point with id {point_id} in the index")
        return np.asarray(records[0].vector, dtype=np.float32), dict(records[0].payload or {})

    def _sample(self, n: int) -> list[SearchHit]:
        points = self._shard.query(qe.QueryRequest(limit=n, query=qe.Sample.Random, with_payload=True))
        return [SearchHit(str(p.id), 0.0, dict(p.payload or {})) for p in points]

    def _delete(self, ids: list[str]) -> None:
        self._shard.update(qe.UpdateOperation.delete_points(ids))


def read_storage(path: Path) -> StorageOptions:
    """The storage options the index at ``path`` was created with."""
    return StorageOptions.from_dict(_read_record(path).get(STORAGE_KEY))


def read_schema(path: Path) -> IndexSchema:
    try:
        return IndexSchema.from_dict(_read_record(path))
    except (ValueError, KeyError, TypeError) as error:
        if isinstance(error, IndexUnavailableError):
            raise
        raise IndexUnavailableError(f"{path / SCHEMA_FILE} is not a valid index schema: {error}") from error


def _read_record(path: Path) -> dict[str, Any]:
    schema_file = path / SCHEMA_FILE
    if not schema_file.is_file():
        raise IndexUnavailableError(
            f"no index at {path} ({SCHEMA_FILE} not found); build one with `simtune images index`"
        )
    try:
        record = json.loads(schema_file.read_text())
    except ValueError as error:
        raise IndexUnavailableError(f"{schema_file} is not a valid index schema: {error}") from error
    if not isinstance(record, dict):
        raise IndexUnavailableError(f"{schema_file} is not a valid index schema: expected a JSON object")
    return record


def _to_filter(conditions: dict[str, str | int | float]) -> qe.Filter | None:
    if not conditions:
        return None
    return qe.Filter(must=[_condition(name, value) for name, value in conditions.items()])


def _condition(name: str, value: str | int | float) -> qe.FieldCondition:
    """Keywords and integers match exactly; a float field matches the one-point range [value, value]."""
    if isinstance(value, float):
        return qe.FieldCondition(name, range=qe.RangeFloat(gte=value, lte=value))
    return qe.FieldCondition(name, match=qe.MatchValue(value))


def _check_not_open(path: Path) -> None:
    """``IndexUnavailableError`` if another ``EdgeIndex`` (this process or another) has the index at ``path`` open."""
    busy = _busy(path, "stop it before re-indexing, or index into another --index folder")
    os.close(edge_storage.lock_folder(path, exclusive=True, busy_message=busy))


def _busy(path: Path, advice: str) -> str:
    return f"the index at {path} is open in another process (e.g. a running `simtune images serve`); {advice}"


def _damaged(path: Path, problem: str) -> IndexUnavailableError:
    return IndexUnavailableError(
        f"the index at {path} is damaged: {problem}; delete the folder and rebuild it with `simtune images index`"
    )


def _check_files(path: Path, recorded: dict[str, Any]) -> None:
    """Every shard file against the manifest (indexes written before the manifest: the point checks only)."""
    if FILES_KEY in recorded:
        problem = edge_storage.manifest_problem(path / SHARD_DIR, recorded[FILES_KEY])
        if problem is not None:
            raise _damaged(path, problem)


def _load_shard(shard_dir: Path, index_path: Path, config: Any) -> Any:
    """The engine's shard at ``shard_dir``; its bare exceptions become one ``IndexUnavailableError`` line."""
    try:
        return qe.EdgeShard.load(str(shard_dir), config)
    except Exception as error:  # the engine raises a bare Exception
        if "No space left" in str(error):
            raise IndexUnavailableError(f"no space left on the disk of {shard_dir} to open the index") from error
        raise IndexUnavailableError(f"cannot open the index at {index_path}: {error}") from error
