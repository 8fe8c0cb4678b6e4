"""The server exposed: the access token, the Host check, offline docs, a damaged index under a running server,
and `serve` killed with SIGKILL or started on a full disk (the CLI in a subprocess, a tiny embedder for the model)."""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from simtune.apps.images.service.indexing import IndexLocation, open_index, record_point_id
from simtune.apps.images.service.serve import create_app
from simtune.search.edge_storage import VIEW_PREFIX, copy_sparse

from .search_fixtures import ThumbnailEmbedder

SEARCH_DIR = Path(__file__).parents[3] / "search"
sys.path.insert(0, str(SEARCH_DIR))
from restricted_fs import ENV, run_python  # noqa: E402

TOKEN = "s3cret-token"
# `simtune ARGS...` with the run's model swapped for ThumbnailEmbedder, as the in-process CLI tests do.
CLI = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from search_fixtures import ThumbnailEmbedder
from simtune.apps.images.data.run_folder import Run
Run.model = lambda run: ThumbnailEmbedder()
from simtune.cli import main
sys.argv = ["simtune", *sys.argv[1:]]
main()
"""


@pytest.fixture
def run_copy(indexed_run, tmp_path) -> tuple[Path, list]:
    run, records = indexed_run
    shutil.copytree(run / "index", tmp_path / "run" / "index", copy_function=copy_sparse)
    return tmp_path / "run", records


def _app(run: Path, **options):
    model = ThumbnailEmbedder()
    index = open_index(IndexLocation.for_run(run), model)
    return index, TestClient(create_app(index, model, **options))


def test_every_route_but_health_needs_the_token(indexed_run):
    run, records = indexed_run
    basic = base64.b64encode(f"anyone:{TOKEN}".encode()).decode()
    index, http = _app(run, auth_token=TOKEN)
    with index, http:
        assert http.get("/health").status_code == 200
        for url in (
            "/",
            "/page",
            "/random",
            "/docs",
            "/openapi.json",
            "/static/app.js",
            f"/search/{record_point_id(records[0])}",
        ):
            refused = http.get(url)
            assert refused.status_code == 401, url
            assert "access token" in refused.json()["detail"] and refused.headers["www-authenticate"].startswith(
                "Basic"
            )
            assert http.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401, url
            assert http.get(url, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200, url
            assert http.get(url, headers={"Authorization": f"Basic {basic}"}).status_code == 200, url
        photo = Path(records[0].path).read_bytes()
        assert http.post("/search", files={"file": ("car.jpg", photo)}).status_code == 401
        assert (
            http.post(
                "/search", files={"file": ("car.jpg", photo)}, headers={"Authorization": f"Bearer {TOKEN}"}
            ).status_code
            == 200
        )


def test_a_request_naming_another_host_is_refused_in_json(indexed_run):
    from simtune.apps.images.service.search_commands import _allowed_hosts

    index, http = _app(indexed_run[0], allowed_hosts=_allowed_hosts("127.0.0.1", []))
    with index, http:
        assert http.get("/health", headers={"Host": "localhost:8000"}).json()["status"] == "ok"
        assert http.get("/health", headers={"Host": "127.0.0.1"}).status_code == 200
        assert http.get("/page", headers={"Host": "[::1]:8000"}).status_code == 200
        for host in ("attacker.example", "localhost.attacker.example:8000"):
            refused = http.get("/page", headers={"Host": host})
            assert refused.status_code == 400 and refused.headers["content-type"] == "application/json", host
            assert refused.json() == {"detail": f"the Host header {host!r} names no host this server answers to"}
        bad_upload = http.post("/search", headers={"Host": "attacker.example"}, files={"file": ("a.jpg", b"x")})
        assert bad_upload.status_code == 400 and "names no host" in bad_upload.json()["detail"]


def test_the_api_docs_need_no_internet(indexed_run):
    index, http = _app(indexed_run[0])
    with index, http:
        page = http.get("/docs").text
        assert "cdn." not in page and "https://" not in page.replace("https://fastapi.tiangolo.com", "")
        scripts = [part.split('"')[0] for part in page.split('src="')[1:]]
        styles = [part.split('"')[0] for part in page.split('href="')[1:] if ".css" in part.split('"')[0]]
        assert scripts and styles
        for asset in scripts + styles:
            served = http.get(asset)
            assert served.status_code == 200 and len(served.content) > 10_000, asset


def test_an_index_damaged_under_a_running_server_makes_health_503(run_copy):
    run, records = run_copy
    index, http = _app(run)
    with index, http:
        assert http.get("/health").json()["status"] == "ok"
        vectors = max(
            (run / "index" / "shard").glob("segments/*/vector_storage/**/*.*"), key=lambda p: p.stat().st_blocks
        )
        os.truncate(vectors, vectors.stat().st_size // 2)
        health = http.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "unavailable"
        assert "is damaged" in health.json()["detail"] and "bytes, not the" in health.json()["detail"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _state(root: Path) -> dict:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def test_serve_killed_with_sigkill_leaves_the_index_usable(run_copy, tmp_path):
    run, records = run_copy
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    before = _state(run / "index")
    port = _free_port()
    env = {**ENV, "TMPDIR": str(scratch), "SIMTUNE_AUTH_TOKEN": TOKEN}
    server = subprocess.Popen(
        [sys.executable, "-c", CLI, "cars", "serve", "--run", str(run), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None and time.monotonic() < deadline, server.communicate()
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert health.json()["points"] == len(records)
        url = f"http://127.0.0.1:{port}/search/{record_point_id(records[0])}"
        assert httpx.get(url, timeout=10).status_code == 401
        assert httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).status_code == 200
    finally:
        server.send_signal(signal.SIGKILL)
        _, errors = server.communicate(timeout=30)
    assert server.returncode == -signal.SIGKILL
    assert "warning" not in errors  # 127.0.0.1 with a token: nothing to warn about
    assert _state(run / "index") == before
    assert len(list(scratch.glob(f"{VIEW_PREFIX}*"))) == 1  # the killed server's view, removed by the next open
    searched = subprocess.run(
        [sys.executable, "-c", CLI, "cars", "search", records[0].path, "--run", str(run), "--json", "--k", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert searched.returncode == 0, searched.stderr
    assert record_point_id(records[0]) in searched.stdout
    assert list(scratch.iterdir()) == []


def test_serving_beyond_this_machine_without_a_token_warns(run_copy):
    from typer.testing import CliRunner

    from simtune.cli import app

    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            app, ["cars", "serve", "--run", str(run_copy[0]), "--host", "0.0.0.0", "--port", str(port)]
        )
    assert result.exit_code == 2
    assert "warning: serving on 0.0.0.0 without --auth-token" in result.output


def test_serve_and_search_with_a_full_scratch_disk_are_one_line(run_copy, tmp_path):
    run, records = run_copy
    full = tmp_path / "full"
    full.mkdir()
    for args in (
        ["serve", "--run", str(run), "--port", str(_free_port())],
        ["search", records[0].path, "--run", str(run)],
    ):
        result = run_python(CLI, "cars", *args, full_tmpfs=full, env={"TMPDIR": str(full)})
        assert result.returncode == 2, result.stderr[-3000:]
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        assert f"no space left in {full}" in lines[0] and "TMPDIR" in lines[0]


def test_index_on_a_full_disk_is_one_line_naming_the_folder(labels_csv_root, tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    args = [
        "cars",
        "index",
        "--data",
        str(labels_csv_root),
        "--run",
        str(tmp_path / "run"),
        "--index",
        str(full / "index"),
    ]
    result = run_python(CLI, *args, full_tmpfs=full)
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if "rror" in line]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"not enough free space in {full} to write the index" in errors[0]


@pytest.fixture
def not_qdrant():
    """A web server that is not Qdrant: HTML 404s for every path but /collections (JSON of another shape)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the standard library's name)
            found = self.path.startswith("/collections")
            body = (
                b'{"hello": "world"}' if found else b"<html><body><h1>Not Found</h1>" + b"x" * 5000 + b"</body></html>"
            )
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "application/json" if found else "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_qdrant_url_that_is_not_qdrant_is_one_line(not_qdrant, labels_csv_root, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from simtune.cli import app

    monkeypatch.setattr("simtune.apps.images.data.run_folder.Run.model", lambda run: ThumbnailEmbedder())
    photo = str(labels_csv_root / "images/001/img_1_0.jpg")
    run = str(tmp_path / "run")
    for args in (
        ["search", photo, "--run", run, "--qdrant-url", not_qdrant],
        ["serve", "--run", run, "--qdrant-url", not_qdrant],
        ["index", "--data", str(labels_csv_root), "--run", run, "--qdrant-url", not_qdrant],
    ):
        result = CliRunner().invoke(app, ["cars", *args])
        assert result.exit_code == 2, result.output
        errors = [line for line in result.output.splitlines() if "rror" in line]
        assert len(errors) == 1 and "Traceback" not in result.output and "<html>" not in result.output, result.output
        assert f"the Qdrant server at {not_qdrant} failed while" in errors[0]
        assert "not a Qdrant" in errors[0], errors[0]


def test_a_second_index_of_a_run_being_indexed_is_refused(labels_csv_root, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from simtune.cli import app
    from simtune.folder_lock import locked_folder

    monkeypatch.setattr("simtune.apps.images.data.run_folder.Run.model", lambda run: ThumbnailEmbedder())
    run = tmp_path / "run"
    args = ["cars", "index", "--data", str(labels_csv_root), "--run", str(run)]
    holder = run_python(
        "import sys, time\nfrom simtune.folder_lock import locked_folder\n"
        "with locked_folder(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(1.5)\n",
        str(run),
        background=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        refused = CliRunner().invoke(app, args)
    finally:
        holder.wait(timeout=30)
    assert refused.exit_code == 2 and len(refused.output.strip().splitlines()) == 1, refused.output
    assert str(run) in refused.output and "Traceback" not in refused.output
    with locked_folder(run):  # the same process may (demo indexes under its own lock)
        assert CliRunner().invoke(app, args).exit_code == 0
