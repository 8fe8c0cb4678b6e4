"""`simtune cars index` and `simtune cars search` end to end, with the run's model swapped for a tiny embedder."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from simtune.cli import app
from simtune.search import point_id

from .search_fixtures import ThumbnailEmbedder

runner = CliRunner()


@pytest.fixture
def thumbnail_model(monkeypatch: pytest.MonkeyPatch) -> ThumbnailEmbedder:
    model = ThumbnailEmbedder()
    monkeypatch.setattr("simtune.apps.images.data.run_folder.Run.model", lambda run: model)
    monkeypatch.setattr(
        "simtune.apps.images.service.indexing.model_for_index", lambda run, backbone=None: (model, False)
    )
    return model


@pytest.fixture
def indexed(labels_csv_root: Path, tmp_path: Path, thumbnail_model: ThumbnailEmbedder) -> tuple[Path, Path]:
    run = tmp_path / "run"
    result = runner.invoke(app, ["cars", "index", "--data", str(labels_csv_root), "--run", str(run)])
    assert result.exit_code == 0, result.output
    return run, labels_csv_root


def _search(run: Path, *args: str):
    return runner.invoke(app, ["cars", "search", *args, "--run", str(run)])


def test_index_is_idempotent_and_reports_where(indexed):
    run, data = indexed
    assert (run / "index" / "simtune_index.json").is_file()
    again = runner.invoke(app, ["cars", "index", "--data", str(data), "--run", str(run)])
    assert again.exit_code == 0, again.output
    assert "0 added, 0 changed, 0 removed, 24 unchanged; 24 points in" in again.output
    assert "simtune cars serve" in again.output


def test_search_prints_json_with_the_photo_itself_first(indexed):
    run, data = indexed
    photo = data / "images/002/img_2_1.jpg"
    result = _search(run, str(photo), "--k", "3", "--json")
    assert result.exit_code == 0, result.output
    hits = json.loads(result.output)
    assert len(hits) == 3
    assert hits[0]["id"] == point_id(photo.as_posix()) and hits[0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert hits[0]["class_name"] == "Aston Martin Virage Coupe 2012" and hits[0]["make"] == "Aston Martin"
    assert hits[0]["path"] == str(photo)


def test_search_filters_and_table_output(indexed):
    run, data = indexed
    result = _search(run, str(data / "images/001/img_1_0.jpg"), "--filter", "make=Land Rover", "--filter", "year=2012")
    assert result.exit_code == 0, result.output
    assert "Land Rover LR2 SUV 2012" in result.output and "Audi" not in result.output


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, "PNG")
    return buffer.getvalue()


def _tiff_float(top: float) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.array([[0.0, top]], dtype=np.float32)).save(buffer, "TIFF")
    return buffer.getvalue()


def test_bad_input_gets_a_clear_message_and_exit_code_2(indexed, tmp_path):
    run, data = indexed
    photo = str(data / "images/001/img_1_0.jpg")
    jpeg = (data / "images/001/img_1_0.jpg").read_bytes()
    cases = [
        ([str(_write(tmp_path / "notes.txt", b"hello"))], "is not an image"),
        ([str(_write(tmp_path / "half.jpg", jpeg[: len(jpeg) // 2]))], "truncated or corrupt"),
        (
            [str(_write(tmp_path / "big.jpg", b"\xff" * (10 * 2**20 + 1)))],
            "is 10,485,761 bytes; the limit is 10,485,760 bytes",
        ),
        ([str(_write(tmp_path / "bomb.png", _png((9000, 9000), "1")))], "9000x9000 = 81,000,000 pixels"),
        ([str(tmp_path / "missing.jpg")], "does not exist"),
        (
            [str(_write(tmp_path / "hdr.tif", _tiff_float(4000.0)))],
            "hdr.tif: image mode 'F' holds pixel values from 0 to 4000",
        ),
        ([photo, "--k", "0"], "k must be an integer from 1 to 1000"),
        ([photo, "--k", str(10**6)], "k must be an integer from 1 to 1000"),
        ([photo, "--filter", "color=red"], "unknown filter field 'color'"),
        ([photo, "--filter", "make"], "expected FIELD=VALUE"),
        ([photo, "--filter", "year=99999999999999999999999"], "year must be an integer from -9223372036854775808"),
        ([photo, "--filter", f"year={2**63}"], "year must be an integer from -9223372036854775808"),
        ([photo, "--index", str(tmp_path / "nowhere")], "no index at"),
        ([photo, "--index", str(tmp_path), "--qdrant-url", "http://127.0.0.1:1"], "not both"),
    ]
    for args, message in cases:
        result = _search(run, *args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output
    serve = runner.invoke(app, ["cars", "serve", "--run", str(run), "--index", str(tmp_path / "nowhere")])
    assert serve.exit_code == 2 and "no index at" in serve.output


def test_searching_with_another_model_is_refused(indexed, thumbnail_model):
    run, data = indexed
    thumbnail_model.name = "retrained"
    result = _search(run, str(data / "images/001/img_1_0.jpg"))
    assert result.exit_code == 2
    assert "built with model thumbnail-v1" in result.output and "not with model retrained" in result.output


@pytest.mark.slow
def test_index_and_search_with_a_real_saved_model(labels_csv_root, tmp_path):
    from simtune.models import SimilarityModel
    from simtune.models.encoders import EfficientNetLiteEncoder
    from simtune.models.heads import EmptyHead

    run = tmp_path / "run"
    encoder = EfficientNetLiteEncoder("lite0")
    SimilarityModel(encoder, EmptyHead(encoder.embedding_size)).save(run / "model")
    indexed = runner.invoke(app, ["cars", "index", "--data", str(labels_csv_root), "--run", str(run)])
    assert indexed.exit_code == 0, indexed.output
    photo = labels_csv_root / "images/003/img_3_2.jpg"
    result = _search(run, str(photo), "--k", "2", "--json")
    assert result.exit_code == 0, result.output
    hits = json.loads(result.output)
    assert hits[0]["path"] == str(photo) and hits[0]["score"] == pytest.approx(1.0, abs=1e-3)

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable,
        "-c",
        "from simtune.cli import main; main()",
        "cars",
        "serve",
        "--run",
        str(run),
        "--port",
        str(port),
    ]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None and time.monotonic() < deadline, (
                server.stdout.read().decode() if server.stdout else ""
            )
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.5)
        assert health.json()["points"] == 24
        found = httpx.post(
            f"http://127.0.0.1:{port}/search", files={"file": ("car.jpg", photo.read_bytes())}, timeout=60
        )
        assert found.status_code == 200, found.text
        assert found.json()["results"][0]["id"] == hits[0]["id"]
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_index_reuses_the_runs_encoder_cache(labels_csv_root, tmp_path, monkeypatch):
    from simtune.models import SimilarityModel
    from simtune.search import EdgeIndex

    run = tmp_path / "run"
    trained = runner.invoke(
        app,
        [
            "cars",
            "train",
            "--data",
            str(labels_csv_root),
            "--run",
            str(run),
            "--epochs",
            "1",
            "--classes-per-batch",
            "2",
            "--samples-per-class",
            "2",
            "--workers",
            "0",
        ],
    )
    assert trained.exit_code == 0, trained.output
    cache_files = {p: p.stat().st_mtime_ns for p in (run / "cache").rglob("*") if p.is_file()}
    assert cache_files

    def no_encoding(*args, **kwargs):
        raise AssertionError("indexing re-encoded images instead of reading the cache")

    with monkeypatch.context() as patch:
        patch.setattr(SimilarityModel, "encode", no_encoding)
        patch.setattr("simtune.apps.images.service.indexing.CACHE_BLOCK_RECORDS", 5)  # blocks, the last one short
        indexed = runner.invoke(app, ["cars", "index", "--data", str(labels_csv_root), "--run", str(run)])
    assert indexed.exit_code == 0, indexed.output
    assert "24 added, 0 changed, 0 removed, 0 unchanged; 24 points" in indexed.output
    assert f"simtune cars serve --run {run}" in indexed.output
    assert {p: p.stat().st_mtime_ns for p in (run / "cache").rglob("*") if p.is_file()} == cache_files

    model = SimilarityModel.load(run / "model")
    with EdgeIndex.open(run / "index") as index:
        ids, stored = index.export_vectors()
    paths = sorted(str(p) for p in labels_csv_root.glob("images/*/*.jpg"))
    encoded = model.encode(paths, to_numpy=True)
    encoded /= np.linalg.norm(encoded, axis=1, keepdims=True)
    row = {point_id(path): i for i, path in enumerate(paths)}
    # The cache holds float16 rows, encoded in bfloat16 where the CPU computes it natively: the same vectors
    # up to that rounding (docs/cache.md), each nearest to its own image's.
    expected = encoded[[row[i] for i in ids]]
    assert np.min(np.sum(stored * expected, axis=1)) > 0.995
    np.testing.assert_array_equal(np.argmax(stored @ expected.T, axis=1), np.arange(len(ids)))


def test_index_and_search_through_the_server_backend(labels_csv_root, tmp_path, thumbnail_model, monkeypatch):
    """--qdrant-url goes through qdrant-client; here its local mode stands in for the server at that URL."""
    from qdrant_client import QdrantClient

    def local_client(url: str, api_key: str | None = None, **options) -> QdrantClient:
        assert url == "http://qdrant.test:6333" and api_key == "secret"
        return QdrantClient(path=str(tmp_path / "qdrant"))

    monkeypatch.setattr("simtune.search.qdrant_server_index.QdrantClient", local_client)
    server = ["--qdrant-url", "http://qdrant.test:6333", "--api-key", "secret", "--collection", "cars-test"]
    run = tmp_path / "run"
    for _ in range(2):  # idempotent
        indexed = runner.invoke(app, ["cars", "index", "--data", str(labels_csv_root), "--run", str(run), *server])
        assert indexed.exit_code == 0, indexed.output
        assert "24 points in http://qdrant.test:6333 (collection 'cars-test')" in indexed.output
    assert not (run / "index").exists()
    photo = labels_csv_root / "images/004/img_4_0.jpg"
    result = _search(run, str(photo), "--k", "1", "--json", *server)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["id"] == point_id(photo.as_posix())  # stderr: the local stand-in warns


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from simtune.models import SimilarityModel
    from simtune.models.encoders import EfficientNetLiteEncoder
    from simtune.models.heads import EmptyHead

    encoder = EfficientNetLiteEncoder("lite0")
    path = tmp_path_factory.mktemp("saved") / "model"
    SimilarityModel(encoder, EmptyHead(encoder.embedding_size)).save(path)
    return path


def _damaged_run(saved_model: Path, run: Path, damage: str) -> Path:
    import shutil

    shutil.copytree(saved_model, run / "model")
    weights = run / "model/encoders/default/weights.safetensors"
    data = bytearray(weights.read_bytes())
    if damage == "flipped byte":
        data[len(data) // 2] ^= 0x01
    else:
        data = data[: len(data) // 3]
    weights.write_bytes(bytes(data))
    return weights


@pytest.mark.parametrize("damage", ["flipped byte", "truncated"])
def test_a_damaged_model_is_one_line_naming_the_file_in_search_and_serve(
    saved_model, labels_csv_root, tmp_path, damage
):
    run = tmp_path / "run"
    weights = _damaged_run(saved_model, run, damage)
    photo = str(labels_csv_root / "images/001/img_1_0.jpg")
    for result in (_search(run, photo), runner.invoke(app, ["cars", "serve", "--run", str(run), "--port", "1"])):
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output
        assert str(weights) in result.output and result.output.startswith("error: cannot load the model of")


def test_an_unreachable_qdrant_server_is_one_line_naming_the_url(labels_csv_root, tmp_path, thumbnail_model):
    run, url = tmp_path / "run", "http://127.0.0.1:1"
    photo = str(labels_csv_root / "images/001/img_1_0.jpg")
    for args in (
        ["search", photo, "--run", str(run), "--qdrant-url", url],
        ["serve", "--run", str(run), "--qdrant-url", url],
        ["index", "--data", str(labels_csv_root), "--run", str(run), "--qdrant-url", url],
    ):
        result = runner.invoke(app, ["cars", *args])
        assert result.exit_code == 2, result.output
        errors = [line for line in result.output.splitlines() if "rror" in line]  # progress bars may come first
        assert "Traceback" not in result.output and len(errors) == 1, result.output
        assert errors[0].startswith(f"error: the Qdrant server at {url} failed while looking up collection 'cars'")


def test_a_damaged_index_is_refused_with_one_line(indexed):
    run, data = indexed
    record_file = run / "index" / "simtune_index.json"
    record = json.loads(record_file.read_text())
    assert record["points"] == 24
    record["points"] = 25  # as if a segment holding one point had been lost
    record_file.write_text(json.dumps(record))
    for result in (
        _search(run, str(data / "images/001/img_1_0.jpg")),
        runner.invoke(app, ["cars", "serve", "--run", str(run)]),
    ):
        assert result.exit_code == 2, result.output
        assert result.output.strip() == (
            f"error: the index at {run / 'index'} is damaged: it holds 24 points of the 25 written when it was built; "
            "delete the folder and rebuild it with `simtune cars index`"  # the app's own command
        )


def test_serve_on_a_busy_port_fails_with_one_line_before_claiming_to_serve(indexed):
    run, _ = indexed
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(app, ["cars", "serve", "--run", str(run), "--port", str(port)])
    assert result.exit_code == 2, result.output
    assert (
        result.output.strip()
        == f"error: cannot listen on 127.0.0.1:{port}: Address already in use; choose another --port or --host"
    )
