"""Opening the embedded index: how long `EdgeIndex.open` takes (its integrity checks included) and what
opening and searching writes to the index folder.

    python benchmarks/index_open.py                      # 16,185 synthetic 1280-d vectors, the cars demo's size
    python benchmarks/index_open.py --index runs/cars/index

Builds the synthetic index once in a temporary folder (or reads ``--index``), then opens it ``--repeats``
times (each open followed by one search and a close) and reports the median and worst open time, and the
index folder's size on disk (allocated blocks, not apparent sizes) and the files whose size or
modification time changed across all opens. Target: opening changes nothing. Writes
benchmarks/results/index_open.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from simtune.atomic import write_json

NUM_VECTORS = 16_185
DIM = 1280
RESULTS = Path(__file__).parent / "results" / "index_open.json"
CARS_FIELDS = {"class_name": "keyword", "make": "keyword", "year": "integer", "split": "keyword", "subset": "keyword"}


def build_synthetic(directory: Path, n: int, dim: int) -> None:
    """Random vectors with the cars demo's payload (class, make, year, split, subset, path)."""
    from simtune.search import EdgeIndex, IndexSchema, point_id

    rng = np.random.default_rng(0)
    schema = IndexSchema("synthetic", dim, "cosine", CARS_FIELDS, None)
    with EdgeIndex.write(directory, schema) as index, tqdm(total=n, desc="building", unit="pt") as bar:
        for start in range(0, n, 1024):
            count = min(1024, n - start)
            paths = [f"images/{i:06d}.jpg" for i in range(start, start + count)]
            payloads = [
                {
                    "class_name": f"class {i % 196}",
                    "make": f"make-{i % 49}",
                    "year": 1990 + i % 23,
                    "split": "train" if i % 2 else "test",
                    "subset": "unseen",
                    "path": path,
                }
                for i, path in zip(range(start, start + count), paths)
            ]
            index.upsert([point_id(p) for p in paths], rng.standard_normal((count, dim), dtype=np.float32), payloads)
            bar.update(count)


def folder_state(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every file's (apparent size, allocated bytes, mtime in ns)."""
    state = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            info = path.stat()
            state[str(path.relative_to(root))] = (info.st_size, info.st_blocks * 512, info.st_mtime_ns)
    return state


def allocated(state: dict[str, tuple[int, int, int]]) -> int:
    return sum(blocks for _, blocks, _ in state.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, help="An existing embedded index (default: build a synthetic one).")
    parser.add_argument("--keep", type=Path, help="Build the synthetic index here and keep it (reused if present).")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    from simtune.search import EdgeIndex

    with tempfile.TemporaryDirectory() as scratch:
        path = args.index or args.keep or Path(scratch) / "index"
        if args.index is None and not (path / "simtune_index.json").exists():
            build_synthetic(path, NUM_VECTORS, DIM)
        before = folder_state(path)
        times = []
        query = np.random.default_rng(1).standard_normal(EdgeIndex.open(path).schema.embedding_size)
        for _ in tqdm(range(args.repeats), desc="opening"):
            started = time.perf_counter()
            index = EdgeIndex.open(path)
            times.append(time.perf_counter() - started)
            with index:
                points = index.count()
                index.search(query, k=10)
        after = folder_state(path)
    changed = sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
    result = {
        "index": str(args.index) if args.index else f"synthetic {NUM_VECTORS} x {DIM}",
        "points": points,
        "open_s_median": statistics.median(times),
        "open_s_max": max(times),
        "repeats": args.repeats,
        "on_disk_mb_before": allocated(before) / 2**20,
        "on_disk_mb_after": allocated(after) / 2**20,
        "files_changed_by_open_and_search": changed,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
    }
    print(f"{result['index']}: {points} points")
    print(f"open: median {result['open_s_median'] * 1000:.0f} ms, max {result['open_s_max'] * 1000:.0f} ms")
    print(f"on disk: {result['on_disk_mb_before']:.1f} MB before, {result['on_disk_mb_after']:.1f} MB after")
    print(f"files changed by opening and searching: {len(changed)}")
    for name in changed:
        print(f"  {name}: {before.get(name)} -> {after.get(name)}")
    RESULTS.parent.mkdir(exist_ok=True)
    write_json(RESULTS, result)


if __name__ == "__main__":
    main()
