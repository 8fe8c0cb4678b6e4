"""Float fields and the storage options (int8 quantization, on disk) on both backends."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient

from simtune.search import EdgeIndex, IndexSchema, InvalidQueryError, QdrantServerIndex, point_id
from simtune.search.edge_index import read_storage
from simtune.search.storage import StorageOptions

SCHEMA = IndexSchema("model-a", 16, "cosine", {"price": "float", "make": "keyword"})
INT8_ON_DISK = StorageOptions("int8", on_disk=True)


def _points(n: int = 300):
    vectors = np.random.default_rng(1).standard_normal((n, 16)).astype(np.float32)
    payloads = [{"price": round(1000 + 0.25 * i, 2), "make": "BMW" if i % 2 else "Audi"} for i in range(n)]
    return [point_id(f"p{i}") for i in range(n)], vectors, payloads


def _edge(tmp_path: Path) -> EdgeIndex:
    return EdgeIndex.create(tmp_path / "edge", SCHEMA, indexing_threshold_kb=1, storage=INT8_ON_DISK)


def _server(tmp_path: Path) -> QdrantServerIndex:
    client = QdrantClient(path=str(tmp_path / "qdrant"))
    with QdrantServerIndex.write(client, "cars", SCHEMA, storage=INT8_ON_DISK):
        pass
    return QdrantServerIndex(client, "cars", expect=SCHEMA)


@pytest.mark.parametrize("opener", [_edge, _server], ids=["edge", "server"])
def test_float_fields_filter_exactly_and_storage_options_are_kept(tmp_path, opener):
    ids, vectors, payloads = _points()
    with opener(tmp_path) as index:
        index.upsert(ids, vectors, payloads)
        if isinstance(index, EdgeIndex):
            index.optimize()
            assert index.indexed_count == len(ids)  # HNSW over int8 codes, rescored
            assert list((index.path / "shard").rglob("quantized.data"))
        else:
            assert index.storage == INT8_ON_DISK
        hits = index.search(vectors[7], k=5, filter={"price": "1001.75"})
        assert [hit.id for hit in hits] == [ids[7]] and hits[0].score == pytest.approx(1.0, abs=1e-5)
        assert {h.payload["make"] for h in index.search(vectors[0], k=20, filter={"make": "BMW"})} == {"BMW"}
        with pytest.raises(InvalidQueryError, match="price must be a finite number"):
            index.search(vectors[0], filter={"price": "nan"})
    if opener is _edge:
        assert read_storage(tmp_path / "edge") == INT8_ON_DISK


def test_unknown_quantization_is_refused():
    with pytest.raises(ValueError, match="unknown quantization 'int4'"):
        StorageOptions("int4")


def test_a_server_sync_gathers_batches_into_parallel_uploads(tmp_path, monkeypatch):
    """Many small embedded batches reach the server as few large uploads; every point arrives once."""
    from simtune.apps.images.service.catalog.sync import _PendingPoints

    index = _server(tmp_path)
    calls = []
    real = index._client.upload_points
    monkeypatch.setattr(index._client, "upload_points", lambda *a, **k: calls.append(len(a[1])) or real(*a, **k))
    ids, vectors, payloads = _points(2500)
    pending = _PendingPoints(index)
    for start in range(0, 2500, 32):
        pending.add(ids[start : start + 32], vectors[start : start + 32], payloads[start : start + 32])
    pending.write()
    assert index.count() == 2500
    assert calls == [1024, 1024, 452]  # 79 batches of 32 gathered into 3 uploads, each sent in parallel parts
    index.close()
