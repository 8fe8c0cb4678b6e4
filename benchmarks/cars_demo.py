"""Run `simtune cars demo` as a user would and report wall time, peak RSS and the metrics as JSON.

Peak RSS is the largest sum over the demo's process tree (main process + image-decoding workers),
sampled every 0.2 s. Run it twice on the same --run folder to measure the cold and the warm (cached) demo.

    python benchmarks/cars_demo.py --data ../shared/datasets/stanford-cars-crop224 --run runs/cars
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import psutil

from simtune.atomic import write_json

RESULTS = Path(__file__).parent / "results"


def tree_rss(process: psutil.Process) -> int:
    total = 0
    for p in [process, *process.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/datasets/stanford-cars-crop224")
    parser.add_argument("--run", default="runs/cars")
    parser.add_argument("--label", default="", help="Name of this measurement (e.g. cold, warm) in the output file.")
    args, extra = parser.parse_known_args()
    simtune = Path(sys.executable).with_name("simtune")
    command = [str(simtune), "cars", "demo", "--data", args.data, "--run", args.run, *extra]
    cached = (Path(args.run) / "cache").is_dir()
    start = time.perf_counter()
    process = psutil.Popen(command)
    peak = 0
    while process.poll() is None:
        peak = max(peak, tree_rss(process))
        time.sleep(0.2)
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        sys.exit(f"demo failed with exit code {process.returncode}")
    metrics = json.loads((Path(args.run) / "metrics.json").read_text())
    result = {
        "command": " ".join(command),
        "cache_present_at_start": cached,
        "wall_seconds": round(seconds, 1),
        "peak_rss_gib": round(peak / 2**30, 3),
        "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "base": metrics["base"],
        "tuned": metrics["tuned"],
        "queries": metrics["queries"],
        "training": metrics["training"],
    }
    write_json(RESULTS / f"cars_demo{'_' + args.label if args.label else ''}.json", result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
