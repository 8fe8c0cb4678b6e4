"""Behaviour every VectorIndex backend shares (run against EdgeIndex and QdrantServerIndex)."""

import numpy as np
import pytest

from simtune.search import (
    MAX_K,
    IndexSchema,
    InvalidQueryError,
    ModelMismatchError,
    UnknownPointError,
    point_id,
)


def _exact_top(vectors: np.ndarray, query: np.ndarray, k: int, mask: np.ndarray | None = None) -> list[int]:
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = unit @ (query / np.linalg.norm(query))
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    return list(np.argsort(-scores)[:k])


def test_search_returns_the_exact_nearest_points_with_payload(open_index, make_points):
    ids, vectors, payloads = make_points(60)
    with open_index() as index:
        index.upsert(ids, vectors, payloads)
        hits = index.search(vectors[7], k=5, exact=True)
    assert [hit.id for hit in hits] == [ids[i] for i in _exact_top(vectors, vectors[7], 5)]
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert hits[0].payload == payloads[7]


def test_filters_keep_only_matching_payloads_and_coerce_integers(open_index, make_points):
    ids, vectors, payloads = make_points(60)
    with open_index() as index:
        index.upsert(ids, vectors, payloads)
        hits = index.search(vectors[0], k=4, filter={"make": "Audi", "year": "2001"}, exact=True)
    mask = np.array([p["make"] == "Audi" and p["year"] == 2001 for p in payloads])
    assert [hit.id for hit in hits] == [ids[i] for i in _exact_top(vectors, vectors[0], 4, mask)]
    assert all(hit.payload["make"] == "Audi" and hit.payload["year"] == 2001 for hit in hits)


def test_upserting_the_same_ids_replaces_instead_of_duplicating(open_index, make_points):
    ids, vectors, payloads = make_points(20)
    with open_index() as index:
        index.upsert(ids, vectors, payloads)
        index.upsert(ids[:5], -vectors[:5], [{**p, "make": "Ford"} for p in payloads[:5]])
        assert index.count() == 20
        stored, payload = index.get(ids[0])
    assert payload["make"] == "Ford"
    np.testing.assert_allclose(stored / np.linalg.norm(stored), -vectors[0] / np.linalg.norm(vectors[0]), atol=1e-5)


def test_similar_to_excludes_the_query_point(open_index, make_points):
    ids, vectors, payloads = make_points(30)
    with open_index() as index:
        index.upsert(ids, vectors, payloads)
        hits = index.similar_to(ids[3], k=4)
    assert [hit.id for hit in hits] == [ids[i] for i in _exact_top(vectors, vectors[3], 5)[1:]]


def test_delete_sample_and_count(open_index, make_points):
    ids, vectors, payloads = make_points(10)
    with open_index() as index:
        index.upsert(ids, vectors, payloads)
        index.delete(ids[:4])
        assert index.count() == 6
        sampled = index.sample(3)
        with pytest.raises(UnknownPointError, match=ids[0]):
            index.get(ids[0])
    assert len(sampled) == 3 and {hit.id for hit in sampled} <= set(ids[4:])


@pytest.mark.parametrize("k", [0, -1, MAX_K + 1, 10**6, 2.5, True])
def test_k_out_of_range_is_rejected(open_index, k):
    with open_index() as index, pytest.raises(InvalidQueryError, match="k must be an integer from 1"):
        index.search(np.ones(8), k=k)


def test_bad_queries_name_the_problem(open_index):
    with open_index() as index:
        with pytest.raises(InvalidQueryError, match="unknown filter field 'color'; filterable fields: make, year"):
            index.search(np.ones(8), filter={"color": "red"})
        with pytest.raises(InvalidQueryError, match="year must be an integer"):
            index.search(np.ones(8), filter={"year": "new"})
        with pytest.raises(InvalidQueryError, match="3 dimensions; the index holds 8-d"):
            index.search(np.ones(3))
        with pytest.raises(InvalidQueryError, match="invalid point id '../etc/passwd'"):
            index.get("../etc/passwd")
        with pytest.raises(UnknownPointError):
            index.similar_to(point_id("not indexed"))
        with pytest.raises(InvalidQueryError, match=r"shape \(n, 8\)"):
            index.upsert(["x"], np.ones((1, 4)), [{}])
        with pytest.raises(InvalidQueryError, match="NaN"):
            index.upsert([point_id("a")], np.full((1, 8), np.nan), [{}])


def test_reopening_with_another_model_is_an_error(open_index, schema, make_points):
    ids, vectors, payloads = make_points(5)
    with open_index() as index:
        index.upsert(ids, vectors, payloads)
    other = IndexSchema("model-b", 8, "cosine", schema.filter_fields)
    with pytest.raises(ModelMismatchError, match="built with model model-a .8-d., not with model model-b"):
        open_index(other)
    with open_index() as index:
        assert index.count() == 5
