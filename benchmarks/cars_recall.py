"""Recall@10 against exact search on the cars, embedded by the pretrained lite0: float32 HNSW and int8.

    python benchmarks/cars_recall.py --n 16185 --cache /tmp/cars-lite0     # every car photo (the last 300: queries)
    python benchmarks/cars_recall.py --n 4096 --cache /tmp/cars-lite0      # the first 4,096 of the same order

1. Embeds the first N photos of ``labels.csv`` in a fixed shuffled order with ``pretrained_model("lite0")``
   (flip-averaged, as ``simtune images index`` without a tuned model), 256 at a time; each chunk is saved
   under ``--cache``, so a rerun or a larger N embeds only what is missing.
2. Holds out the last 300 as queries (new photos, as a user uploads them) and indexes the others in an
   embedded index as ``EdgeIndex.write`` builds it: float32, int8 (rescored) and int8 with the float32
   vectors on disk.
3. Recall@10 of each against exact search (numpy, float32) for several search widths (``hnsw_ef``),
   on the first 150 queries (where a default is chosen) and on the other 150 (where it is reported).
4. Through ``index.search`` (the default search width, ``search_width``), in a fresh process per index:
   recall@10 on all 300 queries, p50/p99 latency of one query at a time, the RSS after the queries; the
   index's size on disk.

Writes benchmarks/results/cars_recall.json.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from catalog import search_profile  # noqa: E402
from simtune.atomic import write_json  # noqa: E402

CARS = Path(__file__).resolve().parents[1] / "../shared/datasets/stanford-cars-crop224"
RESULTS = Path(__file__).parent / "results" / "cars_recall.json"
CHUNK, QUERIES, K = 256, 300, 10
WIDTHS = ("engine", 10, 16, 32, 64, 128, 256, 512)  # "engine": no hnsw_ef, the engine's default (its ef_construct)


def car_embeddings(n: int, cache: Path) -> np.ndarray:
    """The first ``n`` cars of a fixed shuffled order, embedded a chunk at a time (cached)."""
    import torch
    from PIL import Image

    from simtune.apps.images.service.catalog.pretrained_model import pretrained_model

    with open(CARS / "labels.csv", newline="") as f:
        files = [row["filename"] for row in csv.DictReader(f)]
    order = np.random.default_rng(0).permutation(len(files))[:n]
    cache.mkdir(parents=True, exist_ok=True)
    model = None
    chunks = []
    for c in range((n + CHUNK - 1) // CHUNK):
        path = cache / f"chunk_{c:03d}.npy"
        if not path.exists():
            model = model or pretrained_model("lite0").eval()
            started = time.perf_counter()
            images = [Image.open(CARS / files[i]).convert("RGB") for i in order[c * CHUNK : (c + 1) * CHUNK]]
            with torch.inference_mode():
                vectors = np.asarray(model.encode(images, batch_size=32, to_numpy=True), dtype=np.float32)
            np.save(cache / "partial.npy", vectors)
            (cache / "partial.npy").rename(path)
            print(f"embedded chunk {c} in {time.perf_counter() - started:.0f} s", flush=True)
        chunks.append(np.load(path))
    vectors = np.concatenate(chunks)[:n]
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def build(path: Path, vectors: np.ndarray, quantization: str, on_disk: bool) -> list[str]:
    from simtune.search import EdgeIndex, IndexSchema, point_id
    from simtune.search.storage import StorageOptions

    ids = [point_id(f"car-{i}") for i in range(len(vectors))]
    schema = IndexSchema("lite0", vectors.shape[1])
    with EdgeIndex.write(path, schema, storage=StorageOptions(quantization, on_disk)) as index:
        for start in range(0, len(ids), 1024):
            chunk = ids[start : start + 1024]
            index.upsert(chunk, vectors[start : start + 1024], [{} for _ in chunk])
    return ids


def recall_by_width(path: Path, queries: np.ndarray, truth: list[set[str]]) -> dict[str, Any]:
    """Per search width, through the engine's own request ("engine": its default): recall@10 per query and the
    median milliseconds a query (in this process, so only for comparing widths)."""
    import qdrant_edge as qe

    from simtune.search import EdgeIndex
    from simtune.search.storage import RESCORE_OVERSAMPLING

    rescore = qe.QuantizationSearchParams(rescore=True, oversampling=RESCORE_OVERSAMPLING)
    results: dict[str, Any] = {}
    with EdgeIndex.open(path) as index:
        assert index.indexed_count == index.count(), "the index must be searched through HNSW"
        for width in WIDTHS:
            params = qe.SearchParams(hnsw_ef=None if width == "engine" else width, quantization=rescore)
            recalls, seconds = [], []
            for query, expected in zip(queries, truth):
                request = qe.QueryRequest(limit=K, query=qe.Query.Nearest(query.tolist()), params=params)
                started = time.perf_counter()
                found = {str(point.id) for point in index._shard.query(request)}
                seconds.append(time.perf_counter() - started)
                recalls.append(len(found & expected) / K)
            results[str(width)] = {"recalls": recalls, "median_ms": 1000 * float(np.median(seconds))}
    return results


VARIANTS = (("float32", "none", False), ("int8", "int8", False), ("int8_on_disk", "int8", True))


def measure(n: int, cache: Path, work: Path) -> dict[str, Any]:
    from simtune.search import edge_storage
    from simtune.search.storage import search_width

    vectors = car_embeddings(n, cache)
    indexed, queries = vectors[:-QUERIES], vectors[-QUERIES:]
    half = QUERIES // 2
    entry: dict[str, Any] = {"n_indexed": len(indexed), "queries": QUERIES, "default_width_k10": search_width(K)}
    for name, quantization, on_disk in VARIANTS:
        path = work / name
        ids = build(path, indexed, quantization, on_disk)
        exact = np.argsort(-(queries @ indexed.T), axis=1)[:, :K]
        truth = [{ids[i] for i in row} for row in exact]
        by_width = recall_by_width(path, queries, truth)
        profile = search_profile(path, queries, truth)
        entry[name] = {
            "recall_at_10_by_width": {
                width: {
                    "tune": float(np.mean(r["recalls"][:half])),
                    "report": float(np.mean(r["recalls"][half:])),
                    "median_ms": r["median_ms"],
                }
                for width, r in by_width.items()
            },
            **profile,
            "index_mib": edge_storage.allocated_bytes(path) / 2**20,
        }
        print(name, entry[name], flush=True)
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=16_185, help="Car photos embedded (the last 300 are the queries).")
    parser.add_argument("--cache", type=Path, required=True, help="Folder for the embeddings (resumable).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cars-recall-") as work:
        entry = measure(args.n, args.cache, Path(work))
    entry["machine"] = {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()}
    results = __import__("json").loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results[f"lite0-{args.n}"] = entry
    write_json(RESULTS, results, sort_keys=True)
    print(f"wrote {RESULTS}", flush=True)


if __name__ == "__main__":
    main()
