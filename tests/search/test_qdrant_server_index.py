"""QdrantServerIndex specifics, against qdrant-client's local mode (same client API as a server)."""

import pytest
from qdrant_client import QdrantClient, models

from simtune.search import IndexUnavailableError, QdrantServerIndex


def test_the_schema_is_stored_in_the_collection_metadata(tmp_path, schema, make_points):
    ids, vectors, payloads = make_points(5)
    with QdrantServerIndex(QdrantClient(path=str(tmp_path)), "cars", schema, create=True) as index:
        index.upsert(ids, vectors, payloads)
    with QdrantServerIndex(QdrantClient(path=str(tmp_path)), "cars") as index:
        assert index.schema == schema
        assert index.count() == 5


def test_missing_or_foreign_collections_are_clear_errors(tmp_path, schema):
    client = QdrantClient(path=str(tmp_path))
    with pytest.raises(IndexUnavailableError, match="no collection 'cars'"):
        QdrantServerIndex(client, "cars", schema)
    client.create_collection("other", vectors_config=models.VectorParams(size=8, distance=models.Distance.COSINE))
    with pytest.raises(IndexUnavailableError, match="not created by simtune"):
        QdrantServerIndex(client, "other", schema)
    client.close()
