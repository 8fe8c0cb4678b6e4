"""Exact retrieval metrics at scale: time and peak memory next to pytorch-metric-learning (faiss).

    .venv/bin/python benchmarks/eval_scale.py            # N=100,000, d=256, 1,000 classes + 8,100 x 1280
    .venv/bin/python benchmarks/eval_scale.py --n 20000  # a quicker look
    .venv/bin/python benchmarks/eval_scale.py --cars-only --cars-run runs/cars  # + a trained run's real embeddings

The 8,100 x 1,280 timings run twice: "auto" (simtune's choice here: bfloat16 screening on AMX CPUs)
and "float32" (screening off, what other CPUs run). Each measurement runs in its own child process
(same data, regenerated from the seed) so its peak RSS (``resource.getrusage``, the whole process:
interpreter, torch, data and working memory) is its own. Prints a table and writes
benchmarks/results/eval_scale.json (atomically).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import time
from pathlib import Path

from simtune.atomic import write_json

RESULTS = Path(__file__).parent / "results" / "eval_scale.json"
SCALE_METRICS = ("r_precision", "map_at_r", "precision_at_1", "recall_at_10")
FULL_METRICS = ("r_precision", "map_at_r", "precision_at_1", "precision_at_5", "recall_at_1", "recall_at_10", "mrr", "ndcg_at_10")
# "auto": what simtune picks here (bfloat16 screening on AMX CPUs); "float32": the engine everywhere else
ENGINES = ("auto", "float32")
PML_NAMES = {"r_precision": "r_precision", "map_at_r": "mean_average_precision_at_r", "precision_at_1": "precision_at_1"}


def clustered(n: int, dim: int, classes: int, seed: int):
    """Class centres on the unit sphere, members scattered around them: a realistic mix of hits and misses."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    centres = torch.nn.functional.normalize(torch.randn(classes, dim, generator=generator), dim=1)
    groups = torch.arange(n) % classes
    embeddings = centres[groups] + 0.1 * torch.randn(n, dim, generator=generator)
    return embeddings, groups


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def cars_run_cache(run_dir: str) -> Path:
    """The run's one unseen-class encoder cache folder; checked before any timing starts."""
    folders = sorted(Path(run_dir, "cache").glob("val-*"))
    if len(folders) != 1 or not Path(run_dir, "model", "config.json").is_file():
        raise ValueError(f"--cars-run {run_dir}: expected model/ and one cache/val-* (a finished run), "
                         f"found {len(folders)} caches")
    return folders[0]


def cars_run_embeddings(run_dir: str) -> tuple["torch.Tensor", "torch.Tensor"]:
    """The unseen-class (test-half) embeddings of a ``simtune cars`` run: the frozen backbone outputs
    from its encoder cache (``cache/val-*``, see simtune.train.cache.storage) through its trained head."""
    import torch
    from safetensors.torch import load_file

    from simtune.apps.images.run.evaluate import head_embeddings
    from simtune.models import SimilarityModel

    tensors = load_file(cars_run_cache(run_dir) / "embeddings.safetensors")
    model = SimilarityModel.load(Path(run_dir, "model"))
    backbone = torch.cat([tensors[f"embedding.{name}"][0].float() for name in sorted(model.encoders)], dim=1)
    return head_embeddings(model, backbone), tensors["target.groups"]


def run_simtune(spec: dict) -> dict:
    import statistics

    import torch

    from simtune.functional import ranking
    from simtune.functional.retrieval import retrieval_metrics

    if spec["engine"] == "float32":  # what a CPU without AMX (or screening off) runs
        ranking.screening_pays = lambda gallery, k: False
    torch.manual_seed(0)
    if spec.get("run_dir"):
        embeddings, groups = cars_run_embeddings(spec["run_dir"])
    elif spec["random"]:
        embeddings, groups = torch.randn(spec["n"], spec["dim"]), torch.randint(0, spec["classes"], (spec["n"],))
    else:
        embeddings, groups = clustered(spec["n"], spec["dim"], spec["classes"], spec["seed"])
    data_rss = peak_rss_mb()
    load_before = os.getloadavg()[0]
    times = []
    for _ in range(spec["repeats"]):
        start = time.perf_counter()
        result = retrieval_metrics(
            embeddings, groups, metrics=spec["metrics"], distance=spec["distance"],
            max_memory_mb=spec["max_memory_mb"], progress=spec["progress"],
        )
        times.append(time.perf_counter() - start)
    run = dict(seconds=statistics.median(times), all_seconds=times, engine=spec["engine"], peak_rss_mb=peak_rss_mb(),
               rss_after_data_mb=data_rss, metrics=result.metrics, load_average=[load_before, os.getloadavg()[0]],
               shape=list(embeddings.shape))
    if spec["random"]:  # the floor any exact method pays: one full matrix product, nothing else
        start = time.perf_counter()
        embeddings @ embeddings.T
        run["bare_matrix_product_seconds"] = time.perf_counter() - start
    return run


def run_pml(spec: dict) -> dict:
    import torch
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    embeddings, groups = clustered(spec["n"], spec["dim"], spec["classes"], spec["seed"])
    calculator = AccuracyCalculator(include=tuple(PML_NAMES.values()), k="max_bin_count", device=torch.device("cpu"))
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    accuracy = calculator.get_accuracy(embeddings, groups)
    seconds = time.perf_counter() - start
    metrics = {ours: float(accuracy[theirs]) for ours, theirs in PML_NAMES.items()}
    return dict(seconds=seconds, peak_rss_mb=peak_rss_mb(), metrics=metrics, load_average=[load_before, os.getloadavg()[0]])


def in_child(function, spec: dict) -> dict:
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(function, (spec,))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--classes", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=0)
    # simtune's leave-one-out top-k state alone is N x 3k x 8 bytes (238 MB at N=100,000, k=99);
    # 1 GiB leaves room for its largest key blocks. Peak RSS is measured and reported either way.
    parser.add_argument("--max-memory-mb", type=float, default=1024)
    parser.add_argument("--skip-pml", action="store_true", help="time simtune only")
    parser.add_argument("--cars-only", action="store_true", help="only the 8,100 x 1,280 timing")
    parser.add_argument("--cars-run", help="also time the real unseen-class embeddings of this `simtune cars` run folder")
    parser.add_argument("--repeats", type=int, default=5, help="calls per 8,100 x 1,280 timing (the median is reported)")
    args = parser.parse_args()
    if args.cars_run:
        cars_run_cache(args.cars_run)

    import torch

    report = {"threads": torch.get_num_threads(), "cpus": os.cpu_count(), "load_average": os.getloadavg(),
              "amx": bool(torch.cpu._is_amx_tile_supported())}
    if not args.cars_only:
        scale = dict(n=args.n, dim=args.dim, classes=args.classes, seed=args.seed, random=False, distance="euclidean",
                     metrics=SCALE_METRICS, max_memory_mb=args.max_memory_mb, progress=True, repeats=1, engine="auto")
        report["scale"] = {"data": {k: scale[k] for k in ("n", "dim", "classes", "seed")}}
        report["scale"]["simtune"] = in_child(run_simtune, scale)
        if not args.skip_pml:
            report["scale"]["pml_accuracy_calculator_faiss"] = in_child(run_pml, scale)
    # sub-second timings: the median of --repeats calls, for each engine
    cars = dict(n=8_100, dim=1_280, classes=98, seed=args.seed, random=True, distance="cosine",
                metrics=FULL_METRICS, max_memory_mb=args.max_memory_mb, progress=False, repeats=args.repeats)
    report["cars_size"] = {"data": {"n": 8_100, "dim": 1_280, "classes": 98, "random": True, "distance": "cosine"}}
    for engine in ENGINES:
        report["cars_size"][f"simtune_{engine}"] = in_child(run_simtune, {**cars, "engine": engine})
    if args.cars_run:
        report["cars_run"] = {"data": {"run_dir": args.cars_run, "distance": "cosine"}}
        for engine in ENGINES:
            real = {**cars, "run_dir": args.cars_run, "random": False, "engine": engine}
            report["cars_run"][f"simtune_{engine}"] = in_child(run_simtune, real)
    write_json(RESULTS, report)

    if "scale" in report:
        print(f"\nN={args.n:,} d={args.dim} classes={args.classes} (exact; euclidean)")
        print(f"{'implementation':34} {'seconds':>8} {'peak RSS MB':>12}  " + "  ".join(f"{m:>14}" for m in SCALE_METRICS))
        for name, run in report["scale"].items():
            if name == "data":
                continue
            values = "  ".join(f"{run['metrics'][m]:>14.6f}" if m in run["metrics"] else f"{'-':>14}" for m in SCALE_METRICS)
            print(f"{name:34} {run['seconds']:>8.1f} {run['peak_rss_mb']:>12.0f}  {values}"
                  f"  (load {run['load_average'][0]:.1f} -> {run['load_average'][1]:.1f})")
    for name, label in (("cars_size", "8,100 x 1,280 random"), ("cars_run", f"{args.cars_run} unseen-class embeddings")):
        for engine in ENGINES if name in report else ():
            run = report[name][f"simtune_{engine}"]
            bare = f" (bare matrix product alone: {run['bare_matrix_product_seconds']:.3f} s)" if "bare_matrix_product_seconds" in run else ""
            print(f"{label}, cosine, {len(FULL_METRICS)} metrics, engine {engine}: median {run['seconds']:.3f} s "
                  f"of {len(run['all_seconds'])}{bare}, peak RSS {run['peak_rss_mb']:.0f} MB "
                  f"(load {run['load_average'][0]:.1f} -> {run['load_average'][1]:.1f})")
    print(f"metrics: {', '.join(FULL_METRICS)}")
    print(f"{report['threads']} torch threads, AMX {report['amx']}, load average {report['load_average'][0]:.1f} at start")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
