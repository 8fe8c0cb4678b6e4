"""Search latency: embedded Qdrant Edge vs faiss IndexFlatIP on the same vectors, then the HTTP API under load.

    python benchmarks/search_latency.py                 # 16,185 synthetic 1280-d vectors
    python benchmarks/search_latency.py --run runs/cars # the vectors of the run's cars index (RUN/index)

1. Top-10 query latency (one query at a time, single-threaded engines) for faiss ``IndexFlatIP`` (exact),
   the embedded index with ``exact=True`` and with HNSW; HNSW recall@10 against faiss. Target: embedded
   p50 within 2x of faiss.
2. ``GET /search/{id}`` p50/p99 with N concurrent clients for S seconds against a real uvicorn in a
   separate process on 127.0.0.1 (loopback only), counting every non-200 or failed request as an error.

Synthetic vectors are clustered like class embeddings (196 centres + noise) rather than i.i.d. noise,
which no ANN index is meant for. Prints a table and writes benchmarks/results/search_latency.json.
"""

from __future__ import annotations

import argparse
import json
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

NUM_VECTORS = 16_185
DIM = 1280
RESULTS = Path(__file__).parent / "results" / "search_latency.json"


def clustered_vectors(n: int, dim: int, classes: int = 196, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, dim)).astype(np.float32)
    noise = rng.standard_normal((n, dim)).astype(np.float32)
    return centres[rng.integers(0, classes, n)] + 1.5 * noise


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
            index.upsert(ids[chunk], vectors[chunk], [{"make": f"make-{i % 49}"} for i in range(start, start + len(ids[chunk]))])
    return schema


def serve(index_dir: str, port_holder) -> None:
    """Server process: the real app over the index; GET /search/{id} needs no model, only its fingerprint."""
    import uvicorn

    from simtune.apps.images.service.serve import create_app
    from simtune.search import EdgeIndex

    index = EdgeIndex.open(index_dir)

    class IndexedModelOnly:
        embedding_size = index.schema.embedding_size

        def fingerprint(self) -> str:
            return index.schema.fingerprint

        def encode(self, *args, **kwargs):
            raise RuntimeError("this benchmark server only answers GET /search/{id}")

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port_holder.value = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(index, IndexedModelOnly()), log_level="warning", access_log=False))
    server.run(sockets=[sock])


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

    threads = [threading.Thread(target=client, args=(slot,)) for slot in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    flat = [x for per_client in latencies for x in per_client]
    all_errors = [e for per_client in errors for e in per_client]
    return {
        **percentiles_ms(flat), "clients": clients, "seconds": round(elapsed, 1),
        "requests_per_s": round(len(flat) / elapsed, 1), "errors": len(all_errors), "first_errors": all_errors[:3],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="Use RUN/index's vectors instead of synthetic ones.")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
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
        recall = np.mean([
            len({position[h.id] for h in hits} & set(top.tolist())) / 10 for hits, top in zip(hnsw_hits, faiss_top)
        ])

        ctx = multiprocessing.get_context("spawn")
        port = ctx.Value("i", 0)
        server = ctx.Process(target=serve, args=(str(work / "index"), port), daemon=True)
        server.start()
        try:
            http_stats = http_load(wait_until_healthy(port), ids, args.clients, args.seconds)
        finally:
            server.terminate()
            server.join(10)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    report = {
        "vectors": source, "count": len(ids), "dim": int(vectors.shape[1]), "queries": args.queries,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared)", "index_build_s": round(build_s, 1),
        "threads": {"faiss": 1, "edge": "engine default (one search thread per CPU) and 1"}, "edge_segments": segments,
        "faiss_flat_ip": faiss_stats, "edge_exact": exact_stats, "edge_hnsw": {**hnsw_stats, "recall_at_10": recall,
        "indexed_vectors": hnsw_indexed}, "edge_exact_1_thread": exact_1t_stats, "edge_hnsw_1_thread": hnsw_1t_stats,
        "edge_exact_p50_over_faiss": exact_stats["p50_ms"] / faiss_stats["p50_ms"],
        "edge_exact_1_thread_p50_over_faiss": exact_1t_stats["p50_ms"] / faiss_stats["p50_ms"],
        "edge_hnsw_p50_over_faiss": hnsw_stats["p50_ms"] / faiss_stats["p50_ms"], "http_get_search_by_id": http_stats,
    }
    print(f"{'top-10 query':<28}{'p50 ms':>10}{'p99 ms':>10}")
    rows = (
        ("faiss IndexFlatIP (exact)", faiss_stats), ("edge exact", exact_stats), ("edge HNSW", hnsw_stats),
        ("edge exact, 1 thread", exact_1t_stats), ("edge HNSW, 1 thread", hnsw_1t_stats),
    )
    for name, stats in rows:
        print(f"{name:<28}{stats['p50_ms']:>10.3f}{stats['p99_ms']:>10.3f}")
    print(f"edge ({segments} segments) HNSW recall@10 vs faiss: {recall:.3f}; p50 ratio to faiss: exact "
          f"{report['edge_exact_p50_over_faiss']:.2f}x ({report['edge_exact_1_thread_p50_over_faiss']:.2f}x on 1 thread), "
          f"HNSW {report['edge_hnsw_p50_over_faiss']:.2f}x (target <= 2x)")
    print(f"HTTP GET /search/{{id}}, {http_stats['clients']} clients, {http_stats['seconds']} s: p50 {http_stats['p50_ms']:.1f} ms, "
          f"p99 {http_stats['p99_ms']:.1f} ms, {http_stats['requests_per_s']} req/s, {http_stats['errors']} errors")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
