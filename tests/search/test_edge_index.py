import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import simtune
from simtune.search import EdgeIndex, IndexSchema, IndexUnavailableError, ModelMismatchError


def test_write_builds_hnsw_that_agrees_with_exact_search_and_persists(tmp_path, schema, make_points):
    ids, vectors, payloads = make_points(400)
    with EdgeIndex.write(tmp_path / "index", schema, indexing_threshold_kb=1) as index:
        index.upsert(ids, vectors, payloads)
    with EdgeIndex.open(tmp_path / "index", expect=schema) as index:
        assert index.count() == 400
        assert index.indexed_count == 400
        overlap = [
            len({h.id for h in index.search(q, k=10)} & {h.id for h in index.search(q, k=10, exact=True)})
            for q in vectors[:20]
        ]
    assert np.mean(overlap) >= 9.5


def test_export_vectors_returns_every_point_once(tmp_path, schema, make_points):
    ids, vectors, payloads = make_points(2500)
    with EdgeIndex.create(tmp_path / "index", schema) as index:
        index.upsert(ids, vectors, payloads)
        exported_ids, exported = index.export_vectors(batch_size=1000)
    assert sorted(exported_ids) == sorted(ids)
    row = exported_ids.index(ids[42])
    np.testing.assert_allclose(exported[row], vectors[42] / np.linalg.norm(vectors[42]), atol=1e-6)


def test_search_threads_is_accepted_and_results_do_not_change(tmp_path, schema, make_points):
    ids, vectors, payloads = make_points(300)
    with EdgeIndex.write(tmp_path / "index", schema) as index:
        index.upsert(ids, vectors, payloads)
    with EdgeIndex.open(tmp_path / "index") as index:
        default = [h.id for h in index.search(vectors[0], k=10, exact=True)]
    with EdgeIndex.open(tmp_path / "index", search_threads=1) as index:
        assert [h.id for h in index.search(vectors[0], k=10, exact=True)] == default


def test_a_failed_write_leaves_the_existing_index_untouched(tmp_path, schema, make_points):
    ids, vectors, payloads = make_points(50)
    with EdgeIndex.write(tmp_path / "index", schema) as index:
        index.upsert(ids[:30], vectors[:30], payloads[:30])
    with pytest.raises(RuntimeError, match="interrupted"):
        with EdgeIndex.write(tmp_path / "index", schema) as index:
            index.upsert(ids[30:], vectors[30:], payloads[30:])
            index.delete(ids[:10])
            raise RuntimeError("interrupted")
    with EdgeIndex.open(tmp_path / "index", expect=schema) as index:
        assert index.count() == 30
        assert index.get(ids[0])[1] == payloads[0]
    assert [p.name for p in tmp_path.iterdir()] == ["index"]  # no staging copies left behind


KILLED_WRITE = """
import os, signal, sys
sys.path.insert(0, sys.argv[2])
from conftest import SCHEMA, points
from simtune.search import EdgeIndex
ids, vectors, payloads = points(50)
with EdgeIndex.write(sys.argv[1], SCHEMA) as index:
    index.upsert(ids[30:], vectors[30:], payloads[30:])
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_an_index_write_killed_midway_leaves_the_old_index_and_the_next_write_cleans_up(tmp_path, schema, make_points):
    ids, vectors, payloads = make_points(50)
    with EdgeIndex.write(tmp_path / "index", schema) as index:
        index.upsert(ids[:30], vectors[:30], payloads[:30])
    env = {**os.environ, "PYTHONPATH": str(Path(simtune.__file__).parents[1])}
    command = [sys.executable, "-c", KILLED_WRITE, str(tmp_path / "index"), str(Path(__file__).parent)]
    result = subprocess.run(command, env=env, capture_output=True, timeout=120)
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()[-2000:]
    assert [p.name.startswith(".index.staging-") for p in tmp_path.iterdir() if p.name != "index"] == [True]
    with EdgeIndex.open(tmp_path / "index", expect=schema) as index:
        assert index.count() == 30
    with EdgeIndex.write(tmp_path / "index", schema) as index:
        index.upsert(ids[30:], vectors[30:], payloads[30:])
    assert [p.name for p in tmp_path.iterdir()] == ["index"]  # no .staging- or .old- copies left
    with EdgeIndex.open(tmp_path / "index", expect=schema) as index:
        assert index.count() == 50


def test_rewriting_extends_the_index_and_replaces_same_ids(tmp_path, schema, make_points):
    ids, vectors, payloads = make_points(50)
    for chunk in (slice(0, 30), slice(20, 50)):
        with EdgeIndex.write(tmp_path / "index", schema) as index:
            index.upsert(ids[chunk], vectors[chunk], payloads[chunk])
    with EdgeIndex.open(tmp_path / "index") as index:
        assert index.count() == 50


def test_writing_with_another_model_fails_before_touching_the_index(tmp_path, schema, make_points):
    ids, vectors, payloads = make_points(5)
    with EdgeIndex.write(tmp_path / "index", schema) as index:
        index.upsert(ids, vectors, payloads)
    other = IndexSchema("model-b", schema.embedding_size, schema.distance, schema.filter_fields)
    with pytest.raises(ModelMismatchError, match="model-b"):
        with EdgeIndex.write(tmp_path / "index", other):
            pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]


def test_write_refuses_to_replace_a_folder_that_is_not_an_index(tmp_path, schema):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "keep.jpg").write_bytes(b"precious")
    with pytest.raises(IndexUnavailableError, match="is not a simtune index; refusing to replace it"):
        with EdgeIndex.write(tmp_path / "photos", schema):
            pass
    assert (tmp_path / "photos" / "keep.jpg").read_bytes() == b"precious"
    (tmp_path / "empty").mkdir()
    with EdgeIndex.write(tmp_path / "empty", schema):
        pass
    assert (tmp_path / "empty" / "simtune_index.json").is_file()


def test_opening_a_missing_or_busy_index_is_a_clear_error(tmp_path, schema):
    with pytest.raises(IndexUnavailableError, match="no index at .*simtune images index"):
        EdgeIndex.open(tmp_path / "missing")
    with EdgeIndex.create(tmp_path / "index", schema):
        with pytest.raises(IndexUnavailableError, match="open in another process"):
            EdgeIndex.open(tmp_path / "index")


def _written(tmp_path, schema, make_points, n: int):
    ids, vectors, payloads = make_points(n)
    with EdgeIndex.write(tmp_path / "index", schema) as index:
        for start in range(0, n, 256):
            index.upsert(ids[start : start + 256], vectors[start : start + 256], payloads[start : start + 256])
    return tmp_path / "index"


def test_an_index_that_lost_its_segments_is_refused(tmp_path, schema, make_points):
    import shutil

    path = _written(tmp_path, schema, make_points, 2000)
    with EdgeIndex.open(path, expect=schema) as index:
        assert index.count() == 2000
    for segment in (path / "shard" / "segments").iterdir():
        shutil.rmtree(segment)
    with pytest.raises(
        IndexUnavailableError,
        match=r"is damaged: shard/segments/\S+ is missing \(and \d+ more files\); delete the folder and rebuild it",
    ):
        EdgeIndex.open(path, expect=schema)


def test_an_index_holding_other_points_than_recorded_is_refused(tmp_path, schema, make_points):
    import json

    path = _written(tmp_path, schema, make_points, 20)
    original = json.loads((path / "simtune_index.json").read_text())
    assert original["points"] == 20 and len(original["point_id_checksum"]) == 32
    (path / "simtune_index.json").write_text(json.dumps({**original, "points": 21}))
    with pytest.raises(IndexUnavailableError, match="it holds 20 points of the 21 written"):
        EdgeIndex.open(path, expect=schema)
    # an index written before the file manifest: the point ids are checked by value
    legacy = {key: value for key, value in original.items() if key != "files"}
    (path / "simtune_index.json").write_text(json.dumps({**legacy, "point_id_checksum": "0" * 32}))
    with pytest.raises(IndexUnavailableError, match="it holds 20 points, but not the ones of the 20 written"):
        EdgeIndex.open(path, expect=schema)


def test_rewriting_an_index_that_a_server_holds_open_is_refused_before_and_after_the_work(
    tmp_path, schema, make_points
):
    path = _written(tmp_path, schema, make_points, 20)
    ids, vectors, payloads = make_points(30)
    with EdgeIndex.open(path, expect=schema):  # what `serve` holds
        with pytest.raises(IndexUnavailableError, match="is open in another process .*; stop it before re-indexing"):
            with EdgeIndex.write(path, schema) as index:
                index.upsert(ids, vectors, payloads)
    with pytest.raises(IndexUnavailableError, match="is open in another process"):
        with EdgeIndex.write(path, schema) as index:
            index.upsert(ids, vectors, payloads)
            server = EdgeIndex.open(path, expect=schema)  # started while the write ran
    server.close()
    with EdgeIndex.open(path, expect=schema) as index:
        assert index.count() == 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]
    with EdgeIndex.write(path, schema) as index:
        index.upsert(ids, vectors, payloads)
    with EdgeIndex.open(path, expect=schema) as index:
        assert index.count() == 30
