"""`simtune images index` on a catalog: a plain folder of real car photos, its metadata CSV, kept in sync,
resumed after kill -9, and the page/API over it."""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from tests.conftest import shared_dataset
from typer.testing import CliRunner

from simtune.apps.images.service.catalog.sync import sync_catalog
from simtune.apps.images.service.indexing import IndexLocation, open_index
from simtune.cli import app
from simtune.search import EdgeIndex, point_id

from .search_fixtures import ThumbnailEmbedder

runner = CliRunner()


@functools.cache
def car_photos() -> list[Path]:
    """Every photo of the shared cars set (a test that calls this fails, naming the variable, without it)."""
    return sorted((shared_dataset("stanford-cars-crop224") / "images").rglob("*.jpg"))


def copy_photos(folder: Path, start: int, count: int, prefix: str = "car") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    copies = []
    for k, photo in enumerate(car_photos()[start : start + count]):
        target = folder / f"{prefix}_{start + k:04d}.jpg"
        shutil.copyfile(photo, target)
        copies.append(target)
    return copies


def indexed_points(index_dir: Path) -> dict[str, dict]:
    with EdgeIndex.open(index_dir) as index:
        return {point: payload for batch in index.iter_payloads() for point, payload in batch}


def indexed_vectors(index_dir: Path) -> dict[str, np.ndarray]:
    with EdgeIndex.open(index_dir) as index:
        ids, vectors = index.export_vectors()
    return dict(zip(ids, vectors))


def image_files(folder: Path) -> set[str]:
    return {str(p) for p in folder.rglob("*.jpg")}


@pytest.fixture
def thumbnail_model(monkeypatch: pytest.MonkeyPatch) -> ThumbnailEmbedder:
    model = ThumbnailEmbedder()
    monkeypatch.setattr("simtune.apps.images.data.run_folder.Run.model", lambda run: model)
    monkeypatch.setattr(
        "simtune.apps.images.service.indexing.model_for_index", lambda run, backbone=None: (model, False)
    )
    return model


def _index(data: Path, run: Path, *options: str):
    return runner.invoke(app, ["images", "index", "--data", str(data), "--run", str(run), "--workers", "0", *options])


def test_a_plain_folder_is_indexed_recursively_and_kept_in_sync(tmp_path, thumbnail_model):
    data, run = tmp_path / "photos", tmp_path / "run"
    copy_photos(data, 0, 20)
    copy_photos(data / "nested" / "deeper", 20, 5)
    (data / "notes.txt").write_text("not a photo")
    (data / "empty.jpg").write_bytes(b"")
    first = _index(data, run)
    assert first.exit_code == 0, first.output
    assert "indexed plain folder: 25 added, 0 changed, 0 removed, 0 unchanged, 1 unreadable; 25 points" in first.output
    assert "1 files that are not .jpg/.jpeg/.png/.webp/.bmp images, e.g." in first.output
    assert "empty.jpg is empty" in first.output
    (data / "empty.jpg").unlink()
    before = indexed_points(run / "index")
    before_vectors = indexed_vectors(run / "index")
    assert {p["path"] for p in before.values()} == image_files(data)
    assert all("class_name" not in p for p in before.values())

    added = copy_photos(data, 100, 3, prefix="new")
    deleted = [data / "car_0003.jpg", data / "nested" / "deeper" / "car_0021.jpg"]
    for path in deleted:
        path.unlink()
    modified = data / "car_0005.jpg"
    shutil.copyfile(car_photos()[200], modified)  # another car under the same name
    os.utime(modified, ns=(time.time_ns(), time.time_ns() + 10**9))
    second = _index(data, run)
    assert second.exit_code == 0, second.output
    assert "3 added, 1 changed, 2 removed, 22 unchanged; 26 points" in second.output
    after = indexed_points(run / "index")
    after_vectors = indexed_vectors(run / "index")
    assert {p["path"] for p in after.values()} == image_files(data)
    assert set(after) == {point_id(path) for path in image_files(data)}
    unchanged = set(before) & set(after) - {point_id(str(modified))}
    assert len(unchanged) == 22
    assert all(np.array_equal(before_vectors[i], after_vectors[i]) and before[i] == after[i] for i in unchanged)
    assert not np.allclose(before_vectors[point_id(str(modified))], after_vectors[point_id(str(modified))])
    assert {point_id(str(p)) for p in added} <= set(after)

    photo = added[0]
    found = runner.invoke(app, ["images", "search", str(photo), "--run", str(run), "--k", "3", "--json"])
    assert found.exit_code == 0, found.output
    hits = json.loads(found.output)
    assert hits[0]["path"] == str(photo) and hits[0]["file"] == photo.name
    assert hits[0]["score"] == pytest.approx(1.0, abs=1e-5)


def test_a_folder_without_images_is_one_error_line(tmp_path, thumbnail_model):
    data = tmp_path / "empty"
    data.mkdir()
    (data / "readme.md").write_text("no photos here")
    result = _index(data, tmp_path / "run")
    assert result.exit_code == 2
    assert "no images found" in result.output and "readme.md" in result.output
    assert "Traceback" not in result.output


METADATA = (
    "\ufeffpath,colour,price,doors,note\r\n"
    'car_0000.jpg,red,19999.5,4,"plain, with a comma"\r\n'
    "car_0001.jpg,blue,25000,2,second\r\n"
    "car_0002.jpg,red,unknown,4,third\r\n"
    "car_0002.jpg,green,1.5,5,duplicate row\r\n"
    "car_0003.jpg,red,12000.25,4\r\n"
    "missing.jpg,red,1,4,no such file\r\n"
    "../outside.jpg,red,1,4,outside\r\n"
    "car_0004.jpg,blue,30000,4,fifth\r\n"
)


def test_metadata_columns_are_typed_filterable_fields_and_bad_rows_are_reported(tmp_path, thumbnail_model):
    data, run = tmp_path / "photos", tmp_path / "run"
    copy_photos(data, 0, 8)
    (tmp_path / "meta.csv").write_bytes(METADATA.encode())
    result = _index(data, run, "--metadata", str(tmp_path / "meta.csv"))
    assert result.exit_code == 0, result.output
    output = result.output
    assert "8 added" in output
    assert "1 metadata rows skipped (the same path again), e.g. line 5: car_0002.jpg (first on line 4)" in output
    assert "1 metadata values skipped (not a number in a numeric column), e.g. line 4: price='unknown'" in output
    assert "1 metadata rows naming no image in the folder, e.g. line 7: missing.jpg" in output
    assert "metadata rows skipped (path empty or outside" in output and "'../outside.jpg'" in output
    assert "metadata rows skipped (wrong number of cells), e.g. line 6: 4 cells" in output
    assert "4 images without a metadata row" in output

    schema = json.loads((run / "index" / "simtune_index.json").read_text())
    assert schema["filter_fields"] == {"colour": "keyword", "price": "float", "doors": "integer", "note": "keyword"}
    payloads = {p["file"]: p for p in indexed_points(run / "index").values()}
    assert payloads["car_0000.jpg"]["note"] == "plain, with a comma" and payloads["car_0000.jpg"]["price"] == 19999.5
    assert "price" not in payloads["car_0002.jpg"] and payloads["car_0002.jpg"]["colour"] == "red"

    query = str(data / "car_0007.jpg")
    for condition, expected in (
        ("colour=red", {"car_0000.jpg", "car_0002.jpg"}),
        ("price=19999.5", {"car_0000.jpg"}),
        ("doors=2", {"car_0001.jpg"}),
    ):
        found = runner.invoke(
            app, ["images", "search", query, "--run", str(run), "--k", "10", "--json", "--filter", condition]
        )
        assert found.exit_code == 0, found.output
        assert {hit["file"] for hit in json.loads(found.output)} == expected, condition
    bad = runner.invoke(app, ["images", "search", query, "--run", str(run), "--filter", "price=cheap"])
    assert bad.exit_code == 2 and "price must be a finite number" in bad.output

    from simtune.apps.images.service.serve import create_app

    with open_index(IndexLocation.for_run(run), thumbnail_model) as index:
        client = TestClient(create_app(index, thumbnail_model))
        page = client.get("/page").json()
        assert {f["name"]: f["type"] for f in page["filters"]} == schema["filter_fields"]
        target = point_id(str(data / "car_0004.jpg"))
        found = client.get(f"/search/{target}", params={"k": 10, "filter": "colour=blue"})
        assert found.status_code == 200, found.text
        results = found.json()["results"]
        assert [r["file"] for r in results] == ["car_0001.jpg"] and results[0]["price"] == 25000.0
        assert "path" not in results[0] and "class_name" not in results[0]
        with (data / "car_0001.jpg").open("rb") as photo:
            uploaded = client.post("/search", files={"file": photo}, data={"filter": ["doors=2", "colour=blue"]})
        assert uploaded.status_code == 200 and uploaded.json()["results"][0]["file"] == "car_0001.jpg"
        assert client.get("/search/" + target, params={"filter": "price=abc"}).status_code == 400

    edited = METADATA.replace("car_0001.jpg,blue,25000,2,second", "car_0001.jpg,blue,26000,2,second")
    (tmp_path / "meta.csv").write_bytes(edited.encode())
    again = _index(data, run, "--metadata", str(tmp_path / "meta.csv"))
    assert "0 added, 1 changed, 0 removed, 7 unchanged" in again.output, again.output


def test_class_folders_become_class_names(tmp_path, thumbnail_model):
    data, run = tmp_path / "classes", tmp_path / "run"
    copy_photos(data / "sedan", 0, 3)
    copy_photos(data / "coupe", 3, 2)
    result = _index(data, run)
    assert result.exit_code == 0, result.output
    assert "indexed image-folder folder: 5 added" in result.output
    names = sorted(p["class_name"] for p in indexed_points(run / "index").values())
    assert names == ["coupe", "coupe", "sedan", "sedan", "sedan"]
    plain = _index(data, tmp_path / "run2", "--plain")
    assert "indexed plain folder: 5 added" in plain.output


# A sync in another process, embedding with the thumbnail model slowed down, saying when each batch is embedded.
SYNC_SCRIPT = """
import sys, time
sys.path.insert(0, {tests!r})
from apps.images.service.search_fixtures import ThumbnailEmbedder
from simtune.apps.images.service.catalog.sync import sync_catalog
from simtune.apps.images.service.indexing import IndexLocation

class Slow(ThumbnailEmbedder):
    def encode(self, objects, **options):
        time.sleep(0.05)
        vectors = super().encode(objects, **options)
        print("embedded", len(objects), flush=True)
        return vectors

result = sync_catalog({data!r}, IndexLocation(index_dir={index!r}), Slow(), batch_size=4, workers=0, progress=False)
print("done", result.resumed, result.summary(), result.points, flush=True)
"""


def _sync_process(data: Path, index: Path) -> subprocess.Popen:
    tests = str(Path(__file__).parents[3])
    script = SYNC_SCRIPT.format(tests=tests, data=str(data), index=str(index))
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)


def _kill_after(data: Path, index: Path, batches: int) -> None:
    process = _sync_process(data, index)
    seen = 0
    for line in process.stdout:
        seen += line.startswith("embedded")
        if seen >= batches:
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the sync finished before it could be killed"


@pytest.mark.slow
def test_a_sync_killed_at_any_point_resumes_to_the_same_index(tmp_path):
    data = tmp_path / "photos"
    copy_photos(data, 0, 40)
    reference = tmp_path / "reference"
    sync_catalog(data, IndexLocation(index_dir=reference), ThumbnailEmbedder(), batch_size=4, workers=0, progress=False)

    index = tmp_path / "killed"
    for batches in (1, 4, 7):  # each run continues the last one's staged copy
        _kill_after(data, index, batches)
    assert not (index / "simtune_index.json").exists()  # readers never saw a half-made index
    finish = _sync_process(data, index)
    output, _ = finish.communicate(timeout=120)
    assert finish.returncode == 0
    done = output.strip().splitlines()[-1]
    assert done.startswith("done True") and done.endswith(" 40")
    added = int(done.split("done True ")[1].split(" added")[0])
    assert 0 < added <= 40 - 4 * 3 + 4  # earlier runs' batches were kept (all but at most one in flight each)

    assert indexed_points(index) == indexed_points(reference)
    expected, got = indexed_vectors(reference), indexed_vectors(index)
    assert set(got) == set(expected) and all(np.allclose(got[i], expected[i], atol=1e-6) for i in expected)

    # an update of a served index that gets killed leaves the live index as it was
    for photo in copy_photos(data, 50, 8, prefix="more"):
        assert photo.exists()
    _kill_after(data, index, 1)
    assert indexed_points(index) == indexed_points(reference)
    finish = _sync_process(data, index)
    output, _ = finish.communicate(timeout=120)
    assert "done True" in output and output.strip().endswith(" 48")
    assert {p["path"] for p in indexed_points(index).values()} == image_files(data)


@pytest.mark.slow
def test_a_run_without_a_model_indexes_with_the_pretrained_backbone(tmp_path):
    data, run = tmp_path / "photos", tmp_path / "run"
    copies = copy_photos(data, 0, 30)
    result = runner.invoke(app, ["images", "index", "--data", str(data), "--run", str(run), "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert "holds no tuned model: indexing with the pretrained lite0 backbone (flip-averaged)" in result.output
    assert (run / "model" / "config.json").is_file()
    for photo in (copies[0], copies[17]):
        found = runner.invoke(app, ["images", "search", str(photo), "--run", str(run), "--k", "2", "--json"])
        assert found.exit_code == 0, found.output
        hit = json.loads(found.output)[0]
        assert hit["path"] == str(photo) and hit["score"] == pytest.approx(1.0, abs=1e-3)
    again = runner.invoke(app, ["images", "index", "--data", str(data), "--run", str(run), "--workers", "0"])
    assert "holds no tuned model" not in again.output and "0 added, 0 changed, 0 removed, 30 unchanged" in again.output
    other = runner.invoke(
        app, ["images", "index", "--data", str(data), "--run", str(run), "--backbone", "lite1", "--workers", "0"]
    )
    assert other.exit_code == 2 and "already holds a model" in other.output


def test_quantization_and_on_disk_are_set_when_an_index_is_created(tmp_path, thumbnail_model):
    data, run = tmp_path / "photos", tmp_path / "run"
    copy_photos(data, 0, 6)
    result = _index(data, run, "--quantization", "int8", "--on-disk")
    assert result.exit_code == 0, result.output
    record = json.loads((run / "index" / "simtune_index.json").read_text())
    assert record["storage"] == {"quantization": "int8", "on_disk": True}
    copy_photos(data, 6, 1)
    again = _index(data, run)  # an existing index keeps what it was built with
    assert again.exit_code == 0 and "1 added" in again.output
    other = _index(data, run, "--quantization", "none", "--on-disk")
    assert other.exit_code == 2 and "stores int8 quantization with rescoring, on disk" in other.output
    bad = _index(data, run, "--quantization", "int4")
    assert bad.exit_code == 2 and "unknown quantization 'int4'" in bad.output


@pytest.mark.slow
def test_int8_keeps_recall_at_10_against_exact_search_on_real_embeddings(tmp_path, monkeypatch):
    """2,100 car photos embedded by the pretrained backbone: 2,000 indexed (HNSW forced at this size), 100 others
    as queries. With the default search width float32 and int8 (rescored) keep recall@10 >= 0.99 of exact search;
    with a beam of k the float32 graph falls below it, so the search measured is the approximate one."""
    from simtune.apps.images.service.catalog.pretrained_model import pretrained_model
    from simtune.search import IndexSchema
    from simtune.search.storage import StorageOptions

    photos = [str(p) for p in car_photos()[:: len(car_photos()) // 2100][:2100]]
    vectors = pretrained_model("lite0").encode(photos, batch_size=32, num_workers=2)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    is_query = np.arange(len(photos)) % 21 == 0
    indexed, queries = vectors[~is_query], vectors[is_query]
    ids = [point_id(p) for p, q in zip(photos, is_query) if not q]
    exact = [{ids[i] for i in row} for row in np.argsort(-(queries @ indexed.T), axis=1)[:, :10]]

    def recall(index: EdgeIndex) -> float:
        return float(np.mean([len({h.id for h in index.search(q, k=10)} & e) / 10 for q, e in zip(queries, exact)]))

    for quantization in ("none", "int8"):
        with EdgeIndex.create(
            tmp_path / quantization,
            IndexSchema("lite0", vectors.shape[1]),
            indexing_threshold_kb=1,
            storage=StorageOptions(quantization),
        ) as index:
            index.upsert(ids, indexed, [{} for _ in ids])
            index.optimize()
            assert index.indexed_count == len(ids)
            assert recall(index) >= 0.99, quantization
            if quantization == "none":
                with monkeypatch.context() as narrow:
                    narrow.setattr("simtune.search.edge_index.search_width", lambda k: k)
                    assert recall(index) < 0.99
    assert list((tmp_path / "int8").rglob("quantized.data"))


RSS_SCRIPT = """
import resource, sys
sys.path.insert(0, {tests!r})
from apps.images.service.search_fixtures import ThumbnailEmbedder
from simtune.apps.images.service.catalog.sync import sync_catalog
from simtune.apps.images.service.indexing import IndexLocation
result = sync_catalog({data!r}, IndexLocation(index_dir={index!r}), ThumbnailEmbedder(), batch_size=64, workers=2,
                      progress=False)
print(result.points, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _peak_rss_kib(data: Path, index: Path) -> tuple[int, int]:
    script = RSS_SCRIPT.format(tests=str(Path(__file__).parents[3]), data=str(data), index=str(index))
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    points, rss = output.split()
    return int(points), int(rss)


@pytest.mark.slow
def test_peak_memory_of_indexing_does_not_grow_with_the_collection(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for n in (2_000, 8_000):
        folder = tmp_path / f"n{n}"
        for i in range(n):
            sub = folder / f"{i // 500:03d}"
            sub.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(sub / f"{i}.png")
    small_points, small = _peak_rss_kib(tmp_path / "n2000", tmp_path / "i2000")
    large_points, large = _peak_rss_kib(tmp_path / "n8000", tmp_path / "i8000")
    assert (small_points, large_points) == (2_000, 8_000)
    # 4x the images: the same peak within 40 MiB (the index's own RAM for 6,000 more 192-d points is ~5 MiB)
    assert large - small < 40 * 1024, (small, large)
