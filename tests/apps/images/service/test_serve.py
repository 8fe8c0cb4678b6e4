"""The HTTP API over a real uvicorn on 127.0.0.1, with real car photos indexed by a tiny embedder."""

from __future__ import annotations

import contextlib
import io
import json
import socket
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from simtune.apps.images.service.indexing import IndexLocation, build_index, open_index, record_point_id
from simtune.apps.images.service.serve import create_app
from simtune.search import ModelMismatchError, point_id

from .search_fixtures import ThumbnailEmbedder


@pytest.fixture
def client(live_server: str):
    with httpx.Client(base_url=live_server, timeout=30) as http:
        yield http


def _upload(client: httpx.Client, data: bytes, name: str = "car.jpg", **form):
    return client.post("/search", files={"file": (name, data, "image/jpeg")}, data=form)


def _chunked_upload(client: httpx.Client, size: int) -> httpx.Response:
    """A multipart upload sent with chunked transfer encoding, so the server cannot know its size up front."""
    boundary = "simtune-test-boundary"

    def body():
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\n\r\n'.encode()
        for _ in range(size // 2**20):
            yield b"\xff" * 2**20
        yield f"\r\n--{boundary}--\r\n".encode()

    return client.post("/search", content=body(), headers={"content-type": f"multipart/form-data; boundary={boundary}"})


def _json_error(response: httpx.Response, status: int, fragment: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert fragment in str(response.json()["detail"])


def test_health_reports_the_index_and_model(client, indexed_run):
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert body["points"] == len(indexed_run[1])
    assert body["model"] == "thumbnail-v1" and body["embedding_size"] == 192


def test_uploading_an_indexed_photo_finds_itself_first(client, indexed_run):
    record = indexed_run[1][5]
    response = _upload(client, Path(record.path).read_bytes(), k="4")
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == 4
    assert results[0]["id"] == record_point_id(record)
    assert results[0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert results[0]["class_name"] == record.class_name and results[0]["make"] == record.metadata["make"]
    assert "path" not in results[0]
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)


def test_filters_restrict_results(client, indexed_run):
    record = indexed_run[1][0]
    other_make = next(r.metadata["make"] for r in indexed_run[1] if r.metadata["make"] != record.metadata["make"])
    response = _upload(client, Path(record.path).read_bytes(), k="20", filter=f"make={other_make}")
    results = response.json()["results"]
    assert results and all(r["make"] == other_make for r in results)
    by_id = client.get(f"/search/{record_point_id(record)}", params={"k": 20, "filter": f"make={other_make}"}).json()
    assert by_id["results"] and all(r["make"] == other_make for r in by_id["results"])


def test_search_by_id_excludes_the_query_and_images_serve_indexed_files(client, indexed_run):
    record = indexed_run[1][2]
    body = client.get(f"/search/{record_point_id(record)}", params={"k": 3}).json()
    assert body["query"]["class_name"] == record.class_name
    assert len(body["results"]) == 3 and record_point_id(record) not in [r["id"] for r in body["results"]]
    image = client.get(body["results"][0]["image_url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(image.content)).size[0] > 0


def test_random_car_page_and_docs(client, indexed_run):
    assert client.get("/random").json()["id"] in {record_point_id(r) for r in indexed_run[1]}
    page = client.get("/")
    assert page.status_code == 200 and 'id="filters"' in page.text and "/static/app.js" in page.text
    assert client.get("/page").json() == {
        "title": "Similar cars",
        "noun": "cars",
        "filters": [
            {"name": "class_name", "type": "keyword"},
            {"name": "make", "type": "keyword"},
            {"name": "year", "type": "integer"},
        ],
    }
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/docs").status_code == 200
    assert {"/search", "/search/{point_id}", "/images/{image_id}", "/health"} <= set(
        client.get("/openapi.json").json()["paths"]
    )


def _bomb_png() -> bytes:
    """12000x12000 one-bit pixels (144 MP) compress to a few KB: decoding them would cost ~430 MB as RGB."""
    buffer = io.BytesIO()
    Image.new("1", (12000, 12000)).save(buffer, "PNG")
    return buffer.getvalue()


def test_bad_uploads_are_4xx_json_and_the_server_stays_up(client, indexed_run):
    photo = Path(indexed_run[1][0].path).read_bytes()
    _json_error(_upload(client, b"this is a text file, not a photo", "notes.txt"), 400, "not an image")
    _json_error(_upload(client, photo[: len(photo) // 2]), 400, "truncated or corrupt")
    _json_error(
        _upload(client, b"\xff" * (10 * 2**20 + 100_000)), 413, "upload limit of 10,485,760 bytes (10 MiB)"
    )  # by Content-Length
    _json_error(
        _chunked_upload(client, 12 * 2**20), 413, "upload limit of 10,485,760 bytes (10 MiB)"
    )  # streamed, no Content-Length
    _json_error(
        _upload(client, b"\xff" * (10 * 2**20 + 10)),
        413,
        "upload 'car.jpg' is over the limit of 10,485,760 bytes (10 MiB)",
    )  # by bytes read
    _json_error(_upload(client, _bomb_png(), "bomb.png"), 413, "12000x12000 = 144,000,000 pixels")
    for k in ("0", str(10**6)):
        _json_error(_upload(client, photo, k=k), 400, "k must be an integer from 1 to 1000")
    _json_error(_upload(client, photo, k="ten"), 422, "integer")
    _json_error(_upload(client, photo, filter="color=red"), 400, "unknown filter field 'color'")
    _json_error(_upload(client, photo, filter="make"), 400, "expected FIELD=VALUE")
    assert client.get("/health").json()["status"] == "ok"


def test_bad_ids_and_queries_are_4xx_json(client, indexed_run):
    known = record_point_id(indexed_run[1][0])
    unknown = point_id("never indexed")
    for k in (0, 10**6):
        _json_error(client.get(f"/search/{known}", params={"k": k}), 400, "k must be an integer")
    _json_error(client.get(f"/search/{known}", params={"filter": "color=red"}), 400, "unknown filter field 'color'")
    _json_error(client.get(f"/search/{unknown}"), 404, unknown)
    _json_error(client.get(f"/images/{unknown}"), 404, unknown)
    _json_error(client.get("/search/not-a-uuid"), 400, "invalid point id")
    for traversal in ("..%2F..%2Fetc%2Fpasswd", "..%2Fsimtune_index.json", "%2E%2E/%2E%2E/etc/passwd"):
        response = client.get(f"/images/{traversal}")
        assert 400 <= response.status_code < 500 and "detail" in response.json(), traversal
        assert b"root:" not in response.content
    assert client.get("/health").json()["status"] == "ok"


def test_a_raw_dot_dot_path_reaches_the_id_check(live_server):
    """httpx normalizes '../' away, so send the request line by hand as a hostile client would."""
    host, port = live_server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(b"GET /images/../../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        raw = b""
        while chunk := conn.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), head
    assert b"invalid point id" in body and b"root:" not in body


def test_an_index_built_with_another_model_is_refused(indexed_run, tmp_path):
    run, records = indexed_run
    with pytest.raises(ModelMismatchError, match="built with model thumbnail-v1"):
        open_index(IndexLocation.for_run(run), ThumbnailEmbedder("thumbnail-v2"))
    model = ThumbnailEmbedder()
    build_index(tmp_path, records[:2], model=model, progress=False)
    with open_index(IndexLocation.for_run(tmp_path), model) as index:
        model.name = "retrained"
        with pytest.raises(ModelMismatchError, match="not with model retrained"):
            create_app(index, model)


def _grey_png(path: str, sixteen_bit: bool) -> bytes:
    import numpy as np

    grey = np.asarray(Image.open(path).convert("L"), dtype=np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(grey * 257 if sixteen_bit else grey.astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def test_a_sixteen_bit_grey_upload_finds_what_its_8_bit_copy_finds(client, indexed_run):
    path = indexed_run[1][3].path
    eight, sixteen = (
        _upload(client, _grey_png(path, bits), "grey.png", k="5").json()["results"] for bits in (False, True)
    )
    assert [r["id"] for r in sixteen] == [r["id"] for r in eight]
    assert [r["score"] for r in sixteen] == pytest.approx([r["score"] for r in eight], abs=1e-4)


def test_an_image_mode_with_no_rgb_reading_is_a_400_naming_the_mode(client):
    import numpy as np

    buffer = io.BytesIO()
    Image.fromarray(np.array([[0.0, 4000.0]], dtype=np.float32)).save(buffer, "TIFF")
    _json_error(
        _upload(client, buffer.getvalue(), "hdr.tif"),
        400,
        "upload 'hdr.tif': image mode 'F' holds pixel values from 0 to 4000",
    )


@pytest.mark.parametrize("year", ["99999999999999999999999", str(2**63)])
def test_integer_filters_beyond_int64_are_400_on_both_searches(client, indexed_run, year):
    record = indexed_run[1][0]
    photo = Path(record.path).read_bytes()
    _json_error(_upload(client, photo, filter=f"year={year}"), 400, "year must be an integer from")
    _json_error(
        client.get(f"/search/{record_point_id(record)}", params={"filter": f"year={year}"}),
        400,
        "year must be an integer from",
    )


def _copies_indexed(tmp_path: Path, cars_data: Path) -> tuple[Path, list]:
    """Copies of four photos in tmp_path/data, indexed into tmp_path/run, so a test may tamper with them."""
    import dataclasses
    import shutil

    from .search_fixtures import car_records

    records = []
    for i, record in enumerate(car_records(cars_data)[:4]):
        copy = tmp_path / "data" / f"car{i}.jpg"
        copy.parent.mkdir(exist_ok=True)
        shutil.copyfile(record.path, copy)
        records.append(dataclasses.replace(record, path=str(copy)))
    build_index(tmp_path / "run", records, model=ThumbnailEmbedder(), progress=False)
    return tmp_path / "run", records


def _test_client(run: Path):
    from fastapi.testclient import TestClient

    index = open_index(IndexLocation.for_run(run), ThumbnailEmbedder())
    return index, TestClient(create_app(index, ThumbnailEmbedder()))


def _refused(response, tmp_path) -> None:
    assert response.status_code == 404, response.text
    assert "not available on this server" in response.json()["detail"]
    assert b"root:" not in response.content and str(tmp_path).encode() not in response.content


def test_images_are_served_only_as_images_from_inside_the_indexed_folder(indexed_run, tmp_path, cars_data):
    run, records = _copies_indexed(tmp_path, cars_data)
    outside_photo = indexed_run[1][-1].path
    index, http = _test_client(run)
    with index, http:
        assert index.schema.data_root == str((tmp_path / "data").resolve())
        url = [f"/images/{record_point_id(r)}" for r in records]
        served = http.get(url[0])
        assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
        assert served.content == Path(records[0].path).read_bytes()

        Path(records[0].path).unlink()
        Path(records[0].path).symlink_to("/etc/passwd")
        _refused(http.get(url[0]), tmp_path)
        Path(records[1].path).unlink()
        Path(records[1].path).symlink_to(outside_photo)  # a real photo, but outside the indexed folder
        _refused(http.get(url[1]), tmp_path)
        Path(records[2].path).write_text("root:x:0:0:root:/root:/bin/bash\n")
        _refused(http.get(url[2]), tmp_path)
        Path(records[3].path).unlink()
        _refused(http.get(url[3]), tmp_path)
        Image.new("RGB", (8, 8)).save(records[3].path, format="PNG")  # named .jpg: the bytes decide the type
        assert http.get(url[3]).headers["content-type"] == "image/png"


def test_an_index_that_recorded_no_data_folder_serves_no_files(tmp_path, cars_data):
    import json

    run, records = _copies_indexed(tmp_path, cars_data)
    schema_file = run / "index" / "simtune_index.json"
    stored = json.loads(schema_file.read_text())
    stored.pop("data_root")
    schema_file.write_text(json.dumps(stored))
    index, http = _test_client(run)
    with index, http:
        _refused(http.get(f"/images/{record_point_id(records[0])}"), tmp_path)


def test_head_answers_every_get_route_without_a_body(client, indexed_run):
    image_url = f"/images/{record_point_id(indexed_run[1][0])}"
    for url in ("/health", "/", image_url, "/static/app.js", "/openapi.json"):
        got, head = client.get(url), client.head(url)
        assert head.status_code == 200 == got.status_code, url
        assert head.content == b"" and head.headers["content-type"] == got.headers["content-type"], url
        assert int(head.headers["content-length"]) == len(got.content), url
    assert client.head("/search").status_code == 405


@contextlib.contextmanager
def _guarded_server(index, model, max_per_client: int = 64):
    """The app under uvicorn as ``serve`` configures it, on a free 127.0.0.1 port; yields (host, port)."""
    import threading
    import time

    import uvicorn

    from simtune.apps.images.service.connection_guard import server_config

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(server_config(create_app(index, model), 512, max_per_client))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        yield sock.getsockname()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def test_a_client_that_never_finishes_its_request_head_is_disconnected(indexed_run, monkeypatch):
    import time

    from simtune.apps.images.service.connection_guard import GuardedH11Protocol

    monkeypatch.setattr(GuardedH11Protocol, "head_timeout_s", 0.5)
    run, _ = indexed_run
    model = ThumbnailEmbedder()
    build_index(run.parent / "deadline-run", indexed_run[1][:2], model=model, progress=False)
    with open_index(IndexLocation.for_run(run.parent / "deadline-run"), model) as index:
        with _guarded_server(index, model) as address:
            with (
                socket.create_connection(address, timeout=10) as silent,
                socket.create_connection(address, timeout=10) as trickle,
            ):
                trickle.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # never the blank line that ends the head
                started = time.monotonic()
                assert silent.recv(100) == b"" and trickle.recv(100) == b""  # closed by the server
                assert time.monotonic() - started < 5
            assert httpx.get(f"http://{address[0]}:{address[1]}/health", timeout=10).status_code == 200


def test_a_malformed_or_oversized_request_head_is_a_400_in_json(indexed_run):
    from simtune.apps.images.service.connection_guard import MAX_HEAD_BYTES

    model = ThumbnailEmbedder()
    with open_index(IndexLocation.for_run(indexed_run[0]), model) as index, _guarded_server(index, model) as address:
        oversized = f"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {'a' * MAX_HEAD_BYTES}".encode()  # no end yet
        for head in (b"NOT HTTP AT ALL\r\n\r\n", oversized):
            with socket.create_connection(address, timeout=10) as connection:
                connection.sendall(head)
                reply = b""
                while chunk := connection.recv(4096):
                    reply += chunk
            status, _, rest = reply.partition(b"\r\n")
            headers, _, body = rest.partition(b"\r\n\r\n")
            assert status == b"HTTP/1.1 400 Bad Request" and b"content-type: application/json" in headers, reply
            assert "the request head is malformed or over 16 KiB" in json.loads(body)["detail"]
        assert httpx.get(f"http://{address[0]}:{address[1]}/health", timeout=10).status_code == 200


def test_one_client_cannot_hold_every_connection(indexed_run):
    """Loopback answers on all of 127.0.0.0/8, so three addresses stand for three clients."""
    model = ThumbnailEmbedder()
    with open_index(IndexLocation.for_run(indexed_run[0]), model) as index, _guarded_server(index, model, 3) as address:
        held = [socket.create_connection(address, timeout=10, source_address=("127.0.0.2", 0)) for _ in range(3)]
        try:
            with socket.create_connection(address, timeout=10, source_address=("127.0.0.2", 0)) as fourth:
                reply = fourth.recv(4096)
            assert reply.startswith(b"HTTP/1.1 503") and b"already holds 3 connections" in reply
            other = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.3"))
            with other:
                assert other.get(f"http://{address[0]}:{address[1]}/health", timeout=10).status_code == 200
        finally:
            for connection in held:
                connection.close()


def test_a_collection_without_metadata_offers_the_class_name_filter_only(tmp_path, indexed_run):
    records = [replace(r, metadata={}) for r in indexed_run[1][:3]]
    model = ThumbnailEmbedder()
    build_index(tmp_path, records, model=model, progress=False)
    with open_index(IndexLocation.for_run(tmp_path), model) as index:
        with TestClient(create_app(index, model)) as http:
            page = http.get("/page").json()
            hit = http.get(f"/search/{record_point_id(records[0])}", params={"k": 1}).json()["results"][0]
    assert page == {"title": "Similar images", "noun": "images", "filters": [{"name": "class_name", "type": "keyword"}]}
    assert (
        "make" not in hit and hit["class_name"] == records[1].class_name or hit["class_name"] == records[2].class_name
    )
