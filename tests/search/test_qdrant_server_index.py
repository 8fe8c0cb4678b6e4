"""QdrantServerIndex specifics, against qdrant-client's local mode (same client API as a server)."""

import pytest
from qdrant_client import QdrantClient, models

from simtune.search import IndexSchema, IndexUnavailableError, ModelMismatchError, QdrantServerIndex


@pytest.fixture
def client(tmp_path):
    qdrant = QdrantClient(path=str(tmp_path))
    yield qdrant
    qdrant.close()


def _physical_collections(client: QdrantClient) -> list[str]:
    return sorted(c.name for c in client.get_collections().collections)


def test_write_stores_the_schema_and_points_behind_an_alias(client, schema, make_points):
    ids, vectors, payloads = make_points(5)
    with QdrantServerIndex.write(client, "cars", schema) as index:
        index.upsert(ids, vectors, payloads)
    index = QdrantServerIndex(client, "cars")
    assert index.schema == schema and index.count() == 5
    assert [a.alias_name for a in client.get_aliases().aliases] == ["cars"]
    assert len(_physical_collections(client)) == 1


def test_rewrite_extends_and_a_failed_write_leaves_the_collection_untouched(client, schema, make_points):
    ids, vectors, payloads = make_points(40)
    with QdrantServerIndex.write(client, "cars", schema) as index:
        index.upsert(ids[:20], vectors[:20], payloads[:20])
    with QdrantServerIndex.write(client, "cars", schema) as index:
        index.upsert(ids[10:30], vectors[10:30], payloads[10:30])
    assert QdrantServerIndex(client, "cars").count() == 30
    before = _physical_collections(client)
    with pytest.raises(RuntimeError, match="interrupted"):
        with QdrantServerIndex.write(client, "cars", schema) as index:
            index.upsert(ids[30:], vectors[30:], payloads[30:])
            index.delete(ids[:5])
            raise RuntimeError("interrupted")
    assert QdrantServerIndex(client, "cars").count() == 30
    assert _physical_collections(client) == before  # the staging copy is gone


def test_writing_with_another_model_fails_before_copying(client, schema, make_points):
    ids, vectors, payloads = make_points(5)
    with QdrantServerIndex.write(client, "cars", schema) as index:
        index.upsert(ids, vectors, payloads)
    before = _physical_collections(client)
    with pytest.raises(ModelMismatchError, match="model-b"):
        with QdrantServerIndex.write(client, "cars", IndexSchema("model-b", 8, "cosine", schema.filter_fields)):
            pass
    assert _physical_collections(client) == before


def test_missing_or_foreign_collections_are_clear_errors(client, schema):
    with pytest.raises(IndexUnavailableError, match="no collection 'cars'"):
        QdrantServerIndex(client, "cars", schema)
    client.create_collection("other", vectors_config=models.VectorParams(size=8, distance=models.Distance.COSINE))
    with pytest.raises(IndexUnavailableError, match="not created by simtune"):
        QdrantServerIndex(client, "other", schema)
    with pytest.raises(IndexUnavailableError, match="plain collection, not an alias"):
        with QdrantServerIndex.write(client, "other", schema):
            pass


def test_an_unreachable_server_is_one_error_naming_the_url_and_the_step(schema):
    with pytest.raises(
        IndexUnavailableError,
        match=r"^the Qdrant server at http://127.0.0.1:1 failed while looking up collection 'cars': ",
    ):
        QdrantServerIndex.connect("http://127.0.0.1:1", "cars", schema)
    with pytest.raises(IndexUnavailableError, match=r"^the Qdrant server at http://\[::1 failed while parsing its URL"):
        QdrantServerIndex.connect("http://[::1", "cars", schema)
