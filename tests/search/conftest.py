"""Both backends behind one fixture, so the shared VectorIndex behaviour is tested on each."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient

from simtune.search import EdgeIndex, IndexSchema, QdrantServerIndex, VectorIndex, point_id

SCHEMA = IndexSchema("model-a", 8, "cosine", {"make": "keyword", "year": "integer"})
MAKES = ["BMW", "Audi", "Ford"]


def points(n: int, seed: int = 0) -> tuple[list[str], np.ndarray, list[dict]]:
    vectors = np.random.default_rng(seed).standard_normal((n, SCHEMA.embedding_size)).astype(np.float32)
    ids = [point_id(f"images/{i}.jpg") for i in range(n)]
    payloads = [{"make": MAKES[i % 3], "year": 2000 + i % 5, "path": f"images/{i}.jpg"} for i in range(n)]
    return ids, vectors, payloads


def open_edge(tmp_path: Path, schema: IndexSchema = SCHEMA) -> EdgeIndex:
    location = tmp_path / "edge"
    if location.exists():
        return EdgeIndex.open(location, expect=schema)
    return EdgeIndex.create(location, schema, indexing_threshold_kb=1)


def open_server(tmp_path: Path, schema: IndexSchema = SCHEMA) -> QdrantServerIndex:
    # qdrant-client's local mode speaks the same client API as a server, so this is the server backend's code.
    client = QdrantClient(path=str(tmp_path / "qdrant"))
    if not client.collection_exists("cars"):
        with QdrantServerIndex.write(client, "cars", schema):
            pass
    return QdrantServerIndex(client, "cars", expect=schema)


@pytest.fixture
def schema() -> IndexSchema:
    return SCHEMA


@pytest.fixture
def make_points() -> Callable[..., tuple[list[str], np.ndarray, list[dict]]]:
    return points


@pytest.fixture(params=["edge", "server"])
def open_index(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., VectorIndex]:
    opener = open_edge if request.param == "edge" else open_server
    return lambda schema=SCHEMA: opener(tmp_path, schema)
