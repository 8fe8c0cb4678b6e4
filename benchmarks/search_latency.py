"""Search latency: embedded Qdrant Edge vs faiss IndexFlatIP on the same vectors, then the HTTP API under load.

    python benchmarks/search_latency.py                 # 16,185 synthetic 1280-d vectors
    python benchmarks/search_latency.py --run runs/cars # the vectors of the run's cars index (RUN/index)

1. Top-10 query latency (one query at a time, single-threaded engines) for faiss ``IndexFlatIP`` (exact),
   the embedded index with ``exact=True`` and with HNSW; HNSW recall@10 against faiss. Target: embedded
   p50 within 2x of faiss.
2. ``GET /search/{id}`` p50/p99 with N concurrent clients for S seconds against a real uvicorn in a
   separate process on 127.0.0.1 (loopback only), counting every non-200 or failed request as an error.
3. With ``--run``, the same server embeds uploads with the run's model: ``POST /search`` from N clients
   for S seconds, each sending real car photos (``--photos``, the data set's labels.csv) and every
   ``--large-every``-th request a small PNG of about 40 megapixels (6300x6300, just under the pixel limit),
   the uploads that cost a decoder the most memory. Reports latency, errors and the server's peak RSS
   (sampled every 0.2 s). Targets: 0 errors, peak RSS < 3 GiB.

Synthetic vectors are clustered like class embeddings (196 centres + noise) rather than i.i.d. noise,
which no ANN index is meant for. Prints a table and writes benchmarks/results/search_latency.json.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import random
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from simtune.atomic import write_json

NUM_VECTORS = 16_185
DIM = 1280
RESULTS = Path(__file__).parent / "results" / "search_latency.json"


def clustered_vectors(n: int, dim: int, classes: int = 196, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, dim)).astype(np.float32)
    noise = rng.standard_normal((n, dim)).astype(np.float32)
    return centres[rng.integers(0, classes, n)] + 1.5 * noise


def run_clients(client, clients: int) -> float:
    """Runs ``client(slot)`` for each slot in its own thread, all at once; the seconds until the last ends."""
    threads = [threading.Thread(target=client, args=(slot,)) for slot in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def percentiles_ms(seconds: list[float]) -> dict[str, float]:
    values = np.asarray(seconds) * 1000
    return {"p50_ms": float(np.percentile(values, 50)), "p99_ms": float(np.percentile(values, 99)), "n": len(values)}


def time_queries(search, queries: np.ndarray) -> tuple[dict[str, float], list]:
    for query in queries[:20]:  # warm caches
        search(query)
    latencies, results = [], []
    for query in queries:
        start = time.perf_counter()
        results.append(search(query))
        latencies.append(time.perf_counter() - start)
    return percentiles_ms(latencies), results


def build_index(directory: Path, ids: list[str], vectors: np.ndarray, fingerprint: str):
    from simtune.search import EdgeIndex, IndexSchema

    schema = IndexSchema(fingerprint, vectors.shape[1], "cosine", {"make": "keyword"})
    with EdgeIndex.write(directory, schema) as index:
        for start in range(0, len(ids), 1024):
            chunk = slice(start, start + 1024)
            index.upsert(
                ids[chunk], vectors[chunk], [{"make": f"make-{i % 49}"} for i in range(start, start + len(ids[chunk]))]
            )
    return schema


def serve(index_dir: str, port_holder, run_dir: str | None = None) -> None:
    """Server process: the real app over the index, as ``simtune cars serve`` runs it; without a run,
    GET /search/{id} needs no model, only its fingerprint."""
    import uvicorn

    from simtune.apps.images.service.connection_guard import server_config
    from simtune.apps.images.service.search_commands import MAX_CONNECTIONS, MAX_CONNECTIONS_PER_CLIENT
    from simtune.apps.images.service.serve import create_app
    from simtune.search import EdgeIndex

    index = EdgeIndex.open(index_dir)

    class IndexedModelOnly:
        embedding_size = index.schema.embedding_size

        def fingerprint(self) -> str:
            return index.schema.fingerprint

        def encode(self, *args, **kwargs):
            raise RuntimeError("this benchmark server only answers GET /search/{id}")

    if run_dir is not None:
        from simtune.apps.images.data.run_folder import Run

        model = Run(run_dir).model()
    else:
        model = IndexedModelOnly()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port_holder.value = sock.getsockname()[1]
    config = server_config(create_app(index, model), MAX_CONNECTIONS, MAX_CONNECTIONS_PER_CLIENT, access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


def wait_until_healthy(port_holder, timeout: float = 60.0) -> str:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_holder.value:
            try:
                if httpx.get(f"http://127.0.0.1:{port_holder.value}/health", timeout=2).status_code == 200:
                    return f"http://127.0.0.1:{port_holder.value}"
            except httpx.HTTPError:
                pass
        time.sleep(0.2)
    raise RuntimeError("the benchmark server did not become healthy")


def http_load(base_url: str, ids: list[str], clients: int, seconds: float) -> dict:
    import httpx

    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[list[str]] = [[] for _ in range(clients)]
    deadline = time.monotonic() + seconds

    def client(slot: int) -> None:
        rng = random.Random(slot)
        with httpx.Client(base_url=base_url, timeout=10) as http:
            while time.monotonic() < deadline:
                start = time.perf_counter()
                try:
                    response = http.get(f"/search/{rng.choice(ids)}", params={"k": 10})
                    ok = response.status_code == 200 and len(response.json()["results"]) == 10
                    if not ok:
                        errors[slot].append(f"HTTP {response.status_code}: {response.text[:200]}")
                except httpx.HTTPError as error:
                    errors[slot].append(repr(error))
                latencies[slot].append(time.perf_counter() - start)

    elapsed = run_clients(client, clients)
    flat = [x for per_client in latencies for x in per_client]
    all_errors = [e for per_client in errors for e in per_client]
    return {
        **percentiles_ms(flat),
        "clients": clients,
        "seconds": round(elapsed, 1),
        "requests_per_s": round(len(flat) / elapsed, 1),
        "errors": len(all_errors),
        "first_errors": all_errors[:3],
    }


def large_pngs() -> list[tuple[str, bytes]]:
    """Small files that decode to ~40 megapixels each (just under the server's default pixel limit)."""
    import io

    from PIL import Image

    palette = Image.new("P", (6300, 6300), 3)
    palette.putpalette([(7 * i) % 256 for i in range(768)])
    made = []
    for name, image in (
        ("rgb-6300x6300.png", Image.new("RGB", (6300, 6300), (200, 30, 30))),
        ("grey-6300x6300.png", Image.new("L", (6300, 6300), 90)),
        ("palette-6300x6300.png", palette),
    ):
        buffer = io.BytesIO()
        image.save(buffer, "PNG", optimize=True)
        made.append((name, buffer.getvalue()))
    return made


def car_photos(labels_csv: Path, n: int, seed: int = 0) -> list[tuple[str, bytes]]:
    import csv

    with labels_csv.open(newline="") as f:
        names = [row["filename"] for row in csv.DictReader(f)]
    chosen = random.Random(seed).sample(names, min(n, len(names)))
    return [(Path(name).name, (labels_csv.parent / name).read_bytes()) for name in chosen]


class PeakRss:
    """Samples a process's resident memory in a thread; ``peak`` in bytes."""

    def __init__(self, pid: int, every_s: float = 0.2) -> None:
        import psutil

        self.process = psutil.Process(pid)
        self.peak = self.process.memory_info().rss
        self.start = self.peak
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.every_s):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def upload_load(base_url: str, photos: list, pngs: list, clients: int, seconds: float, large_every: int) -> dict:
    """POST /search from ``clients`` threads for ``seconds``: photos, and every ``large_every``-th upload a
    large PNG."""
    import httpx

    latencies: list[list[tuple[str, float]]] = [[] for _ in range(clients)]
    errors: list[list[str]] = [[] for _ in range(clients)]
    deadline = time.monotonic() + seconds

    def client(slot: int) -> None:
        rng = random.Random(slot)
        with httpx.Client(base_url=base_url, timeout=120) as http:
            sent = 0
            while time.monotonic() < deadline:
                sent += 1
                kind, (name, data) = (
                    ("large", rng.choice(pngs))
                    if sent % large_every == slot % large_every
                    else ("photo", rng.choice(photos))
                )
                start = time.perf_counter()
                try:
                    response = http.post("/search", files={"file": (name, data)}, data={"k": "10"})
                    if response.status_code != 200 or len(response.json()["results"]) != 10:
                        errors[slot].append(f"{name}: HTTP {response.status_code}: {response.text[:200]}")
                except httpx.HTTPError as error:
                    errors[slot].append(f"{name}: {error!r}")
                latencies[slot].append((kind, time.perf_counter() - start))

    elapsed = run_clients(client, clients)
    flat = [x for per_client in latencies for x in per_client]
    all_errors = [e for per_client in errors for e in per_client]
    by_kind = {
        kind: percentiles_ms([t for k, t in flat if k == kind])
        for kind in ("photo", "large")
        if any(k == kind for k, _ in flat)
    }
    return {
        **percentiles_ms([t for _, t in flat]),
        "by_kind": by_kind,
        "clients": clients,
        "seconds": round(elapsed, 1),
        "requests_per_s": round(len(flat) / elapsed, 1),
        "errors": len(all_errors),
        "first_errors": all_errors[:3],
        "large_pngs": {name: len(data) for name, data in pngs},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="Use RUN/index's vectors instead of synthetic ones.")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--upload-clients", type=int, default=16)
    parser.add_argument("--upload-seconds", type=float, default=30.0)
    parser.add_argument("--large-every", type=int, default=8, help="Every n-th upload of a client is a large PNG.")
    parser.add_argument("--photos", type=Path, default=Path("../shared/datasets/stanford-cars-crop224/labels.csv"))
    args = parser.parse_args()

    import faiss

    from simtune.search import EdgeIndex, point_id

    faiss.omp_set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="simtune-bench-"))
    try:
        if args.run is not None:
            with EdgeIndex.open(args.run / "index") as run_index:
                ids, vectors = run_index.export_vectors()
                fingerprint = run_index.schema.fingerprint
            source = f"cars index of {args.run} ({len(ids)} x {vectors.shape[1]})"
        else:
            vectors = clustered_vectors(NUM_VECTORS, DIM)
            ids = [point_id(f"synthetic/{i}") for i in range(NUM_VECTORS)]
            fingerprint = "synthetic"
            source = f"synthetic clustered vectors ({NUM_VECTORS} x {DIM}); no run index given"
        print(f"vectors: {source}")
        start = time.perf_counter()
        build_index(work / "index", ids, vectors, fingerprint)
        build_s = time.perf_counter() - start
        print(f"embedded index built (upsert + HNSW) in {build_s:.1f} s")

        unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        flat = faiss.IndexFlatIP(unit.shape[1])
        flat.add(unit)
        rng = np.random.default_rng(1)
        queries = unit[rng.choice(len(unit), args.queries, replace=False)]
        faiss_stats, faiss_top = time_queries(lambda q: flat.search(q[None], 10)[1][0], queries)
        with EdgeIndex.open(work / "index") as index:
            exact_stats, _ = time_queries(lambda q: index.search(q, k=10, exact=True), queries)
            hnsw_stats, hnsw_hits = time_queries(lambda q: index.search(q, k=10), queries)
            hnsw_indexed, segments = index.indexed_count, index.segment_count
        with EdgeIndex.open(work / "index", search_threads=1) as index:  # like faiss here: one thread
            exact_1t_stats, _ = time_queries(lambda q: index.search(q, k=10, exact=True), queries)
            hnsw_1t_stats, _ = time_queries(lambda q: index.search(q, k=10), queries)
        position = {pid: i for i, pid in enumerate(ids)}
        recall = np.mean(
            [len({position[h.id] for h in hits} & set(top.tolist())) / 10 for hits, top in zip(hnsw_hits, faiss_top)]
        )

        ctx = multiprocessing.get_context("spawn")
        port = ctx.Value("i", 0)
        run_dir = str(args.run) if args.run is not None else None
        server = ctx.Process(target=serve, args=(str(work / "index"), port, run_dir), daemon=True)
        server.start()
        upload_stats = None
        try:
            base_url = wait_until_healthy(port)
            with PeakRss(server.pid) as rss:
                http_stats = http_load(base_url, ids, args.clients, args.seconds)
                if run_dir is not None:
                    photos = car_photos(args.photos, 200)
                    upload_stats = upload_load(
                        base_url, photos, large_pngs(), args.upload_clients, args.upload_seconds, args.large_every
                    )
            memory = {
                "start_bytes": rss.start,
                "peak_bytes": rss.peak,
                "peak_gib": round(rss.peak / 2**30, 3),
                "target_gib": 3,
            }
        finally:
            server.terminate()
            server.join(10)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    report = {
        "vectors": source,
        "count": len(ids),
        "dim": int(vectors.shape[1]),
        "queries": args.queries,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared)",
        "index_build_s": round(build_s, 1),
        "threads": {"faiss": 1, "edge": "engine default (one search thread per CPU) and 1"},
        "edge_segments": segments,
        "faiss_flat_ip": faiss_stats,
        "edge_exact": exact_stats,
        "edge_hnsw": {**hnsw_stats, "recall_at_10": recall, "indexed_vectors": hnsw_indexed},
        "edge_exact_1_thread": exact_1t_stats,
        "edge_hnsw_1_thread": hnsw_1t_stats,
        "edge_exact_p50_over_faiss": exact_stats["p50_ms"] / faiss_stats["p50_ms"],
        "edge_exact_1_thread_p50_over_faiss": exact_1t_stats["p50_ms"] / faiss_stats["p50_ms"],
        "edge_hnsw_p50_over_faiss": hnsw_stats["p50_ms"] / faiss_stats["p50_ms"],
        "http_get_search_by_id": http_stats,
        "http_post_search_uploads": upload_stats,
        "server_rss": memory,
    }
    print(f"{'top-10 query':<28}{'p50 ms':>10}{'p99 ms':>10}")
    rows = (
        ("faiss IndexFlatIP (exact)", faiss_stats),
        ("edge exact", exact_stats),
        ("edge HNSW", hnsw_stats),
        ("edge exact, 1 thread", exact_1t_stats),
        ("edge HNSW, 1 thread", hnsw_1t_stats),
    )
    for name, stats in rows:
        print(f"{name:<28}{stats['p50_ms']:>10.3f}{stats['p99_ms']:>10.3f}")
    print(
        f"edge ({segments} segments) HNSW recall@10 vs faiss: {recall:.3f}; p50 ratio to faiss: exact "
        f"{report['edge_exact_p50_over_faiss']:.2f}x "
        f"({report['edge_exact_1_thread_p50_over_faiss']:.2f}x on 1 thread), "
        f"HNSW {report['edge_hnsw_p50_over_faiss']:.2f}x (target <= 2x)"
    )
    print(
        f"HTTP GET /search/{{id}}, {http_stats['clients']} clients, {http_stats['seconds']} s: "
        f"p50 {http_stats['p50_ms']:.1f} ms, "
        f"p99 {http_stats['p99_ms']:.1f} ms, {http_stats['requests_per_s']} req/s, {http_stats['errors']} errors"
    )
    if upload_stats is not None:
        print(
            f"HTTP POST /search uploads, {upload_stats['clients']} clients, {upload_stats['seconds']} s: p50 "
            f"{upload_stats['p50_ms']:.0f} ms, p99 {upload_stats['p99_ms']:.0f} ms, "
            f"{upload_stats['requests_per_s']} req/s, "
            f"{upload_stats['errors']} errors; by kind: "
            + ", ".join(f"{k} n={v['n']} p50 {v['p50_ms']:.0f} ms" for k, v in upload_stats["by_kind"].items())
        )
    print(
        f"server RSS: {memory['start_bytes'] / 2**30:.2f} GiB at start, "
        f"peak {memory['peak_gib']:.2f} GiB (target < 3 GiB)"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS, report)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
