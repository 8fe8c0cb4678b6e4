"""The embedded index on disk: every damaged part refused on open, and opening never writes to the index
(a read-only folder and a full disk can still be searched)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from simtune.search import EdgeIndex, IndexUnavailableError
from simtune.search.edge_storage import VIEW_PREFIX, content_checksum, copy_sparse

from .restricted_fs import run_python


@pytest.fixture(scope="module")
def built(tmp_path_factory, schema_module) -> Path:
    """A 600-point index with an HNSW segment (so it holds every kind of engine file)."""
    from .conftest import points

    path = tmp_path_factory.mktemp("built") / "index"
    ids, vectors, payloads = points(600)
    with EdgeIndex.write(path, schema_module, indexing_threshold_kb=1) as index:
        index.upsert(ids, vectors, payloads)
    return path


@pytest.fixture(scope="module")
def schema_module():
    from .conftest import SCHEMA

    return SCHEMA


@pytest.fixture
def index_copy(built, tmp_path) -> Path:
    copy = tmp_path / "index"
    shutil.copytree(built, copy, copy_function=copy_sparse)
    return copy


def _vector_file(path: Path) -> Path:
    """The optimized segment's vectors (the largest file holding data under a vector_storage folder)."""
    files = [p for p in path.glob("shard/segments/*/vector_storage/**/*") if p.is_file()]
    return max(files, key=lambda p: p.stat().st_blocks)


def _segments(path: Path) -> list[Path]:
    return list((path / "shard" / "segments").iterdir())


def _delete(path: Path, part: str) -> None:
    found = [segment / part for segment in _segments(path) if (segment / part).exists()]
    assert found
    for folder in found:
        shutil.rmtree(folder)


def _truncate_vectors(path: Path) -> None:
    vectors = _vector_file(path)
    os.truncate(vectors, vectors.stat().st_size // 2)


def _zero_inside_vectors(path: Path) -> None:
    vectors = _vector_file(path)
    with open(vectors, "r+b") as file:
        file.seek(8192)
        file.write(bytes(4096))


def _add_a_file(path: Path) -> None:
    (_segments(path)[0] / "stray.dat").write_bytes(b"x")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: _delete(p, "vector_storage"), r"shard/segments/\S+/vector_storage/\S+ is missing"),
        (lambda p: _delete(p, "payload_storage"), r"shard/segments/\S+/payload_storage/\S+ is missing"),
        (lambda p: _delete(p, "vector_index"), r"shard/segments/\S+/vector_index/\S+ is missing"),
        (_truncate_vectors, r"shard/segments/\S+/vector_storage/\S+ is [\d,]+ bytes, not the [\d,]+ written"),
        (_zero_inside_vectors, r"shard/segments/\S+/vector_storage/\S+ was changed after the index was built"),
        (_add_a_file, r"it holds files it was not built with \(shard/segments/\S+/stray.dat\)"),
    ],
    ids=["vectors-deleted", "payloads-deleted", "hnsw-deleted", "vectors-truncated", "vectors-zeroed", "extra-file"],
)
def test_every_damaged_part_is_refused_on_open(index_copy, schema_module, damage, message):
    with EdgeIndex.open(index_copy, expect=schema_module) as index:
        assert index.count() == 600
    damage(index_copy)
    with pytest.raises(IndexUnavailableError, match=rf"the index at \S+ is damaged: {message}.*rebuild it"):
        EdgeIndex.open(index_copy, expect=schema_module)
    from .conftest import points

    ids, vectors, payloads = points(3, seed=1)
    with pytest.raises(IndexUnavailableError, match="is damaged"):  # nor is it extended, blessing the damage
        with EdgeIndex.write(index_copy, schema_module) as index:
            index.upsert(ids, vectors, payloads)


def test_a_file_removed_while_open_fails_the_cheap_check(index_copy, schema_module):
    with EdgeIndex.open(index_copy, expect=schema_module) as index:
        index.verify_files()
        _truncate_vectors(index_copy)
        with pytest.raises(IndexUnavailableError, match="is damaged: .* bytes, not the"):
            index.verify_files()


def _state(root: Path) -> dict[str, tuple]:
    state = {}
    for folder, dirs, names in os.walk(root):
        state[folder] = tuple(sorted(dirs + names))
        for name in names:
            info = (Path(folder) / name).stat()
            state[f"{folder}/{name}"] = (info.st_size, info.st_blocks, info.st_mtime_ns)
    return state


def test_opening_and_searching_writes_nothing_to_the_index_and_leaves_no_scratch(index_copy, schema_module, tmp_path):
    from .conftest import points

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    os.environ["TMPDIR"] = str(scratch)
    import tempfile

    tempfile.tempdir = None
    try:
        before = _state(index_copy)
        with EdgeIndex.open(index_copy, expect=schema_module) as index:
            hits = index.search(points(1)[1][0], k=5)
            assert [p.name.startswith(VIEW_PREFIX) for p in scratch.iterdir()] == [True]
        with EdgeIndex.open(index_copy, expect=schema_module, search_threads=1) as index:
            assert [h.id for h in index.search(points(1)[1][0], k=5)] == [h.id for h in hits]
        assert _state(index_copy) == before
        assert list(scratch.iterdir()) == []
    finally:
        del os.environ["TMPDIR"]
        tempfile.tempdir = None


SEARCH = """
import sys
import numpy as np
from simtune.search import EdgeIndex
with EdgeIndex.open(sys.argv[1]) as index:
    hits = index.search(np.ones(index.schema.embedding_size), k=3)
    print(index.count(), len(hits), hits[0].payload["make"])
"""


def test_a_read_only_index_folder_is_searched(index_copy):
    result = run_python(SEARCH, str(index_copy), read_only=index_copy)
    assert result.returncode == 0, result.stderr[-3000:]
    count, hits, make = result.stdout.split()
    assert (count, hits) == ("600", "3") and make in {"BMW", "Audi", "Ford"}


def test_a_full_scratch_disk_is_one_line_naming_it(index_copy, tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    result = run_python(
        "import sys\nfrom simtune.search import EdgeIndex, IndexUnavailableError\n"
        "try:\n    EdgeIndex.open(sys.argv[1])\nexcept IndexUnavailableError as error:\n    print(error)\n",
        str(index_copy),
        full_tmpfs=full,
        env={"TMPDIR": str(full)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"no space left in {full} for the scratch files" in result.stdout and "TMPDIR" in result.stdout


def test_a_view_left_by_a_killed_process_is_removed_by_the_next_open(index_copy, tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    killed = run_python(
        "import os, signal, sys\nfrom simtune.search import EdgeIndex\nindex = EdgeIndex.open(sys.argv[1])\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n",
        str(index_copy),
        env={"TMPDIR": str(tmp_path)},
    )
    assert killed.returncode == -9
    assert len(list(tmp_path.glob(f"{VIEW_PREFIX}*"))) == 1
    with EdgeIndex.open(index_copy) as index:
        assert index.count() == 600
        assert len(list(tmp_path.glob(f"{VIEW_PREFIX}*"))) == 1  # only this one's
    assert list(tmp_path.glob(f"{VIEW_PREFIX}*")) == []


def test_a_reindex_keeps_sparse_files_sparse(index_copy, schema_module):
    from .conftest import points

    def allocated(root: Path) -> int:
        return sum(p.stat().st_blocks * 512 for p in root.rglob("*") if p.is_file())

    before = allocated(index_copy)
    ids, vectors, payloads = points(601)
    with EdgeIndex.write(index_copy, schema_module) as index:
        index.upsert(ids[600:], vectors[600:], payloads[600:])
    assert allocated(index_copy) < 1.5 * before  # a dense copy of the preallocated files is over 10x
    with EdgeIndex.open(index_copy) as index:
        assert index.count() == 601


def test_the_content_checksum_ignores_holes_but_not_zeroed_data(tmp_path):
    sparse, dense = tmp_path / "sparse", tmp_path / "dense"
    with open(sparse, "wb") as file:
        file.seek(5 * 2**20)
        file.write(b"data")
    dense.write_bytes(bytes(5 * 2**20) + b"data")
    assert content_checksum(sparse) == content_checksum(dense)
    data = np.random.default_rng(0).bytes(3 * 2**20)
    dense.write_bytes(data)
    before = content_checksum(dense)
    dense.write_bytes(data[: 2**20] + bytes(4096) + data[2**20 + 4096 :])
    assert content_checksum(dense) != before
