"""Indexing a catalog at scale: a synthetic folder of N unique photos, indexed cold, resynced, searched.

    python benchmarks/catalog.py --n 10000 --model pixels       # the pipeline around the network
    python benchmarks/catalog.py --n 300 --model pretrained     # the pretrained backbone (lite0, flip-averaged)

1. Builds N unique JPEGs from the cars photos (a random crop of 70-100% of each side, a random flip,
   brightness/contrast/colour jitter of +-25%, 224x224, quality 90) in a temporary folder, 1,000 per
   sub-folder.
2. Cold index (``sync_catalog``, as ``simtune images index`` runs it) in a child process: images/s and
   the peak RSS of that process (the sync itself and the engine holding the index; the decoding workers
   apart) and the peak PSS of the whole tree (workers included, shared pages counted once), every 0.1 s.
3. Resync after adding 1% new photos and deleting 1%: seconds; and a resync with nothing changed (the
   cost of comparing the folder with the index: listing, reading the points' payloads, the staged copy).
4. The index on disk; the staged copy of it alone (what every update pays before its first point).
5. Search, one query at a time in a fresh process: p50/p99 latency of the float32 index (HNSW) and of
   the same points in an int8-quantized index (with rescoring), and in an int8 index with the originals
   on disk; the RSS of each process after its queries; recall@10 of each against exact search (numpy,
   float32).

``--model pixels`` embeds each photo as a fixed random projection of its 32x32 thumbnail to 1280
dimensions: decoding, batching, upserting and the index work exactly as with a network, at no network
cost, so it measures everything but the model (whose images/s ``--model pretrained`` measures on its
own). Recall on these vectors is not recall on a network's embeddings (``benchmarks/cars_recall.py``
measures that, and the slow test ``test_int8_keeps_recall_at_10_against_exact_search_on_real_embeddings``
checks it). Writes
benchmarks/results/catalog.json (one entry per model and N).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from simtune.atomic import write_json

CARS = Path(__file__).resolve().parents[1] / "../shared/datasets/stanford-cars-crop224/images"
RESULTS = Path(__file__).parent / "results" / "catalog.json"
SIDE, QUERIES = 224, 300


class PixelProjection:
    """A stand-in embedder: the 32x32 thumbnail, projected to 1280 dimensions by a fixed random matrix."""

    embedding_size = 1280

    def __init__(self) -> None:
        self.projection = np.random.default_rng(0).standard_normal((32 * 32 * 3, 1280)).astype(np.float32)

    def fingerprint(self) -> str:
        return "pixel-projection-1280"

    def encode(self, objects: list[Any], batch_size: int = 32, to_numpy: bool = True, progress: bool = False):
        thumbnails = [np.asarray(o.convert("RGB").resize((32, 32)), dtype=np.float32) for o in objects]
        pixels = np.stack([thumbnail.reshape(-1) for thumbnail in thumbnails])
        return (pixels / 255.0 - 0.5) @ self.projection


def _make_photo(job: tuple[int, str, str]) -> None:
    from PIL import Image, ImageEnhance, ImageOps

    index, source, target = job
    rng = random.Random(index)
    with Image.open(source) as opened:
        image = opened.convert("RGB")
    width, height = image.size
    w, h = int(width * rng.uniform(0.7, 1.0)), int(height * rng.uniform(0.7, 1.0))
    x, y = rng.randint(0, width - w), rng.randint(0, height - h)
    image = image.crop((x, y, x + w, y + h)).resize((SIDE, SIDE))
    if rng.random() < 0.5:
        image = ImageOps.mirror(image)
    for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        image = enhance(image).enhance(rng.uniform(0.75, 1.25))
    image.save(target, quality=90)


def make_catalog(root: Path, first: int, count: int, sources: list[Path], workers: int) -> list[Path]:
    jobs = []
    for i in range(first, first + count):
        folder = root / f"{i // 1000:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        jobs.append((i, str(sources[i % len(sources)]), str(folder / f"{i:07d}.jpg")))
    with multiprocessing.get_context("fork").Pool(max(1, workers)) as pool:
        pool.map(_make_photo, jobs, chunksize=64)
    return [Path(job[2]) for job in jobs]


def _model(name: str) -> Any:
    if name == "pixels":
        return PixelProjection()
    from simtune.apps.images.service.catalog.pretrained_model import pretrained_model

    return pretrained_model("lite0")


def _sync_job(data: str, index: str, model: str, batch_size: int, workers: int, queue: Any) -> None:
    from simtune.apps.images.service.catalog.sync import sync_catalog
    from simtune.apps.images.service.indexing import IndexLocation

    started = time.perf_counter()
    location = IndexLocation(index_dir=Path(index))
    result = sync_catalog(data, location, _model(model), batch_size=batch_size, workers=workers, progress=False)
    counts = result.counts
    queue.put(
        {
            "seconds": time.perf_counter() - started,
            "points": result.points,
            "added": counts.added,
            "changed": counts.changed,
            "removed": counts.removed,
            "unchanged": counts.unchanged,
        }
    )


def timed_sync(data: Path, index: Path, model: str, batch_size: int, workers: int) -> dict[str, Any]:
    """One sync in a child process, forked as the CLI forks its decoding workers; its result plus the peak RSS
    of the process and the peak PSS of its whole tree (shared pages counted once between the processes)."""
    import psutil

    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_sync_job, args=(str(data), str(index), model, batch_size, workers, queue))
    child.start()
    process = psutil.Process(child.pid)
    peak_main = peak_tree = 0
    while child.is_alive():
        try:
            main = process.memory_info().rss
            tree = sum(p.memory_full_info().pss for p in [process, *process.children(recursive=True)])
        except psutil.Error:
            break
        peak_main, peak_tree = max(peak_main, main), max(peak_tree, tree)
        time.sleep(0.1)
    child.join()
    if child.exitcode != 0:
        raise RuntimeError(f"the sync failed (exit code {child.exitcode})")
    return {**queue.get(), "peak_rss_mib": peak_main / 2**20, "peak_pss_with_workers_mib": peak_tree / 2**20}


def _search_job(index: str, queries: np.ndarray, k: int, queue: Any) -> None:
    import psutil

    from simtune.search import EdgeIndex

    with EdgeIndex.open(index) as opened:
        for vector in queries[:20]:  # warm-up
            opened.search(vector, k=k)
        latencies, found = [], []
        for vector in queries:
            started = time.perf_counter()
            hits = opened.search(vector, k=k)
            latencies.append(time.perf_counter() - started)
            found.append([hit.id for hit in hits])
    queue.put({"latencies": latencies, "found": found, "rss_mib": psutil.Process().memory_info().rss / 2**20})


def search_profile(index: Path, queries: np.ndarray, truth: list[set[str]], k: int = 10) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_search_job, args=(str(index), queries, k, queue))
    child.start()
    result = queue.get()
    child.join()
    latencies = np.asarray(result["latencies"]) * 1000
    recall = float(np.mean([len(set(found) & expected) / k for found, expected in zip(result["found"], truth)]))
    return {
        "p50_ms": float(np.percentile(latencies, 50)),
        "p99_ms": float(np.percentile(latencies, 99)),
        "recall_at_10": recall,
        "rss_mib": result["rss_mib"],
    }


def quantized_copy(source: Path, target: Path, on_disk: bool) -> float:
    """The points of ``source`` in a new int8 index at ``target``; returns the seconds its build took."""
    from simtune.search import EdgeIndex
    from simtune.search.edge_index import read_schema
    from simtune.search.storage import StorageOptions

    schema = read_schema(source)
    with EdgeIndex.open(source) as index:
        ids, vectors = index.export_vectors()
    started = time.perf_counter()
    with EdgeIndex.write(target, schema, storage=StorageOptions("int8", on_disk=on_disk)) as index:
        for start in range(0, len(ids), 1024):
            chunk = ids[start : start + 1024]
            index.upsert(chunk, vectors[start : start + 1024], [{} for _ in chunk])
    return time.perf_counter() - started


def measure(n: int, model: str, work: Path, batch_size: int, workers: int) -> dict[str, Any]:
    from simtune.search import EdgeIndex, edge_storage

    sources = sorted(CARS.rglob("*.jpg"))
    data, index = work / "catalog", work / "index"
    started = time.perf_counter()
    files = make_catalog(data, 0, n, sources, workers)
    print(f"made {n:,} photos in {time.perf_counter() - started:.0f} s", flush=True)

    cold = timed_sync(data, index, model, batch_size, workers)
    print(f"cold index: {cold}", flush=True)
    unchanged = timed_sync(data, index, model, batch_size, workers)
    print(f"resync, nothing changed: {unchanged}", flush=True)
    one_percent = max(1, n // 100)
    make_catalog(data, n, one_percent, sources, workers)
    for path in random.Random(1).sample(files, one_percent):
        path.unlink()
    resync = timed_sync(data, index, model, batch_size, workers)
    print(f"resync +1% -1%: {resync}", flush=True)

    started = time.perf_counter()
    edge_storage.copy_tree_sparse(index, work / "copy")
    copy_seconds = time.perf_counter() - started
    shutil.rmtree(work / "copy")

    with EdgeIndex.open(index) as opened:
        ids, vectors = opened.export_vectors()
    rng = np.random.default_rng(0)
    picked = rng.choice(len(ids), size=min(QUERIES, len(ids)), replace=False)
    queries = vectors[picked] + 0.05 * rng.standard_normal((len(picked), vectors.shape[1])).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    scores = queries @ vectors.T  # stored vectors are normalised (cosine)
    truth = [{ids[i] for i in row} for row in np.argsort(-scores, axis=1)[:, :10]]
    del vectors, scores
    search = {"float32": search_profile(index, queries, truth)}
    sizes = {"float32": edge_storage.allocated_bytes(index) / 2**20}
    builds = {}
    for name, on_disk in (("int8", False), ("int8_on_disk", True)):
        builds[name] = quantized_copy(index, work / name, on_disk)
        search[name] = search_profile(work / name, queries, truth)
        sizes[name] = edge_storage.allocated_bytes(work / name) / 2**20
    print(f"search: {search}", flush=True)
    return {
        "n": n,
        "model": model,
        "batch_size": batch_size,
        "workers": workers,
        "cold_index": {**cold, "images_per_s": n / cold["seconds"]},
        "resync_nothing_changed": unchanged,
        "resync_add_1pct_delete_1pct": resync,
        "index_mib": sizes,
        "staged_copy_s": copy_seconds,
        "int8_build_s": builds,
        "search": search,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[10_000])
    parser.add_argument("--model", choices=("pixels", "pretrained"), default="pixels")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", type=Path, default=None, help="Scratch folder (default: a temporary one).")
    args = parser.parse_args()
    results = __import__("json").loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    for n in args.n:
        with tempfile.TemporaryDirectory(prefix="catalog-bench-", dir=args.work) as work:
            entry = measure(n, args.model, Path(work), args.batch_size, args.workers)
        entry["machine"] = {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()}
        results[f"{args.model}-{n}"] = entry
        write_json(RESULTS, results, sort_keys=True)
        print(f"wrote {RESULTS}", flush=True)


if __name__ == "__main__":
    main()
