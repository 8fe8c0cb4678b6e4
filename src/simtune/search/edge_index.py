"""The embedded default backend: Qdrant's engine in-process (``qdrant-edge-py``), persisted in a folder.

Layout: ``DIR/simtune_index.json`` (the ``IndexSchema``, plus the point count and a checksum of the
point ids as written) and ``DIR/shard/`` (the Qdrant Edge shard). Writers go through ``EdgeIndex.write``,
which works on a staged copy and swaps it in only when the whole write succeeded, so a failed or
interrupted re-index leaves the existing index as it was. ``open`` compares the shard with the recorded
count and checksum, so a shard that lost files is refused instead of answering from what is left.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from simtune.atomic import replace_directory
from simtune.search.base import SearchHit, VectorIndex
from simtune.search.errors import IndexUnavailableError, UnknownPointError
from simtune.search.schema import IndexSchema
from simtune.search.storage import INT8_QUANTILE, RESCORE_OVERSAMPLING, StorageOptions

SCHEMA_FILE = "simtune_index.json"
POINTS_KEY, CHECKSUM_KEY = "points", "point_id_checksum"
SHARD_DIR = "shard"
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

    def __init__(self, path: Path, shard: qe.EdgeShard, schema: IndexSchema) -> None:
        self.path = path
        self.schema = schema
        self._shard = shard

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
        if (path / SCHEMA_FILE).exists():
            raise IndexUnavailableError(f"an index already exists at {path}")
        path.mkdir(parents=True, exist_ok=True)
        on_disk = storage.on_disk or None
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
        )
        shard = qe.EdgeShard.create(str(path / SHARD_DIR), config)
        for name, kind in schema.filter_fields.items():
            shard.update(qe.UpdateOperation.create_field_index(name, _FIELD_TYPES[kind]))
        shard.flush()
        (path / SCHEMA_FILE).write_text(
            json.dumps({**json.loads(schema.to_json()), STORAGE_KEY: storage.to_dict()}, indent=2, sort_keys=True)
        )
        return cls(path, shard, schema)

    @classmethod
    def open(cls, path: str | Path, expect: IndexSchema | None = None, search_threads: int | None = None) -> EdgeIndex:
        """Opens an existing index; with ``expect``, one built with another model is an error.

        ``search_threads`` bounds the engine's search pool (segments are searched in parallel);
        Qdrant Edge persists it with the index.
        """
        path = Path(path)
        schema = read_schema(path)
        recorded = _read_record(path)
        if expect is not None:
            schema.check_same_model(expect)
        config = None
        if search_threads is not None:
            vectors = qe.EdgeVectorParams(size=schema.embedding_size, distance=_DISTANCES[schema.distance])
            config = qe.EdgeConfig(vectors=vectors, max_search_threads=search_threads)
        shard = _load_shard(path, config, "stop it, or query that server over HTTP")
        index = cls(path, shard, schema)
        if POINTS_KEY in recorded:
            try:
                index._check_integrity(recorded[POINTS_KEY], recorded.get(CHECKSUM_KEY))
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
        storage: StorageOptions | None = None,
    ) -> Iterator[EdgeIndex]:
        """Yields a writable staged copy of the index at ``path`` (created with ``storage`` if missing).

        On success the copy is optimized (HNSW built) and replaces ``path``; on any exception it is
        discarded and ``path`` is untouched. The model check happens before anything is copied.
        """
        path = Path(path)
        existing = (path / SCHEMA_FILE).exists()
        if existing:
            read_schema(path).check_same_model(schema)
            _check_not_open(path)  # a running server keeps answering from a folder swapped away under it
        elif path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise IndexUnavailableError(f"{path} exists and is not a simtune index; refusing to replace it")
        with replace_directory(path) as staging:
            if existing:
                shutil.copytree(path, staging, dirs_exist_ok=True)
                index = cls.open(staging, expect=schema)
            else:
                index = cls.create(staging, schema, indexing_threshold_kb, storage)
            try:
                yield index
                index.optimize()
                record = {
                    **json.loads(schema.to_json()),
                    STORAGE_KEY: _read_record(staging).get(STORAGE_KEY, StorageOptions().to_dict()),
                    POINTS_KEY: index.count(),
                    CHECKSUM_KEY: index.id_checksum(),
                }
            finally:
                index.close()
            (staging / SCHEMA_FILE).write_text(json.dumps(record, indent=2, sort_keys=True))
            if (path / SCHEMA_FILE).exists():
                _check_not_open(path)  # again: a server may have started while this write ran

    def optimize(self) -> None:
        """Merges segments and builds HNSW where the indexing threshold is reached."""
        self._shard.optimize()
        self._shard.flush()

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
            raise IndexUnavailableError(
                f"the index at {self.path} is damaged: it holds {found} of the {points} written when it was built; "
                "delete the folder and rebuild it with `simtune images index`"
            )

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
        self._shard.close()

    def _upsert(self, ids: list[str], vectors: np.ndarray, payloads: list[dict[str, Any]]) -> None:
        points = [qe.Point(i, v.tolist(), p) for i, v, p in zip(ids, vectors, payloads)]
        self._shard.update(qe.UpdateOperation.upsert_points(points))

    def _search(self, vector: np.ndarray, k: int, filter: dict[str, str | int | float], exact: bool) -> list[SearchHit]:
        request = qe.QueryRequest(
            limit=k,
            query=qe.Query.Nearest(vector.tolist()),
            filter=_to_filter(filter),
            with_payload=True,
            params=qe.SearchParams(
                exact=exact, quantization=qe.QuantizationSearchParams(rescore=True, oversampling=RESCORE_OVERSAMPLING)
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
    """``IndexUnavailableError`` if another ``EdgeIndex`` (this process or another) holds the shard at ``path``."""
    _load_shard(path, None, "stop it before re-indexing, or index into another --index folder").close()


def _load_shard(path: Path, config: Any, when_busy: str) -> Any:
    """The shard at ``path``; the engine's bare exceptions become one ``IndexUnavailableError`` line, and a shard
    another process holds open (a running server) says so, followed by ``when_busy``."""
    try:
        return qe.EdgeShard.load(str(path / SHARD_DIR), config)
    except Exception as error:  # the engine raises a bare Exception
        if "WouldBlock" in str(error):
            raise IndexUnavailableError(
                f"the index at {path} is open in another process (e.g. a running `simtune images serve`); {when_busy}"
            ) from error
        raise IndexUnavailableError(f"cannot open the index at {path}: {error}") from error
