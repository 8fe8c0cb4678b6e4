"""Exact retrieval metrics at scale: time and peak memory next to pytorch-metric-learning (faiss).

    .venv/bin/python benchmarks/eval_scale.py            # N=100,000, d=256, 1,000 classes + 8,100 x 1280
    .venv/bin/python benchmarks/eval_scale.py --n 20000  # a quicker look
    .venv/bin/python benchmarks/eval_scale.py --cars-only --cars-run runs/cars  # + a trained run's real embeddings

The scale comparison runs simtune and PML's ``AccuracyCalculator`` alternately in one child process
(``--repeats`` each; medians and the ratio of medians, so load from other processes on a shared
machine hits both alike). simtune runs first, so the peak RSS read after its first call
(``resource.getrusage``: interpreter, torch, data and working memory) is its own; PML's is the
process's peak at the end. The 8,100 x 1,280 timings run twice: with faiss's heaps keeping each
row's candidates (faiss installed) and with torch's (faiss missing), each in its own child process.
Prints a table and writes benchmarks/results/eval_scale.json (atomically).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import time
from pathlib import Path
from typing import TYPE_CHECKING

from simtune.atomic import write_json

if TYPE_CHECKING:  # for the annotations: the functions import torch where they use it
    import torch

RESULTS = Path(__file__).parent / "results" / "eval_scale.json"
SCALE_METRICS = ("r_precision", "map_at_r", "precision_at_1", "recall_at_10")
FULL_METRICS = (
    "r_precision",
    "map_at_r",
    "precision_at_1",
    "precision_at_5",
    "recall_at_1",
    "recall_at_10",
    "mrr",
    "ndcg_at_10",
)
# who keeps each row's candidates: faiss's heaps (faiss installed) or torch (faiss missing)
CANDIDATES = ("faiss-heaps", "torch")
PML_NAMES = {
    "r_precision": "r_precision",
    "map_at_r": "mean_average_precision_at_r",
    "precision_at_1": "precision_at_1",
}


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


def check_cars_run(run_dir: str) -> None:
    """A finished run (model and dataset); checked before any timing starts."""
    for name in ("model/config.json", "dataset.json"):
        if not Path(run_dir, name).is_file():
            raise ValueError(f"--cars-run {run_dir}: no {name}; expected a finished `simtune cars` run folder")


def cars_run_embeddings(run_dir: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The unseen-class embeddings of a ``simtune cars`` run, as its evaluation computes them: the
    cached backbone outputs through its trained head (nothing is encoded when the run is complete)."""
    import torch

    from simtune.apps.images.data.dataset import UNSEEN, ImageDataset
    from simtune.apps.images.run.evaluate import head_embeddings
    from simtune.apps.images.run.features import BackboneFeatures, mirrors_images
    from simtune.apps.images.run.settings import load_settings
    from simtune.models import SimilarityModel

    model = SimilarityModel.load(Path(run_dir, "model"))
    dataset = ImageDataset.load(Path(run_dir, "dataset.json"))
    unseen = dataset.subset(UNSEEN)
    settings = load_settings(run_dir)
    features = BackboneFeatures.of_run(model.encoders, dataset.records, Path(run_dir, "cache"), settings).prepare()
    outputs = features.backbone_outputs(unseen, mirrored=mirrors_images(model.encoders))
    return head_embeddings(model, outputs), torch.tensor([record.class_index for record in unseen])


def load(spec: dict):
    import torch

    torch.manual_seed(0)
    if spec.get("run_dir"):
        return cars_run_embeddings(spec["run_dir"])
    if spec["random"]:
        return torch.randn(spec["n"], spec["dim"]), torch.randint(0, spec["classes"], (spec["n"],))
    return clustered(spec["n"], spec["dim"], spec["classes"], spec["seed"])


def time_simtune(embeddings, groups, spec: dict) -> tuple[float, dict]:
    from simtune.functional.retrieval import retrieval_metrics

    start = time.perf_counter()
    result = retrieval_metrics(
        embeddings,
        groups,
        metrics=spec["metrics"],
        distance=spec["distance"],
        max_memory_mb=spec["max_memory_mb"],
        progress=spec["progress"],
    )
    return time.perf_counter() - start, result.metrics


def time_pml(embeddings, groups) -> tuple[float, dict]:
    import torch
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    calculator = AccuracyCalculator(include=tuple(PML_NAMES.values()), k="max_bin_count", device=torch.device("cpu"))
    start = time.perf_counter()
    accuracy = calculator.get_accuracy(embeddings, groups)
    return time.perf_counter() - start, {ours: float(accuracy[theirs]) for ours, theirs in PML_NAMES.items()}


def run_alternating(spec: dict) -> dict:
    """simtune, PML, simtune, PML, ... in this process; simtune's peak RSS before PML ever ran."""
    import statistics

    embeddings, groups = load(spec)
    data_rss = peak_rss_mb()
    times = {"simtune": [], "pml": []}
    loads = [os.getloadavg()[0]]
    simtune_rss = None
    for _ in range(spec["repeats"]):
        seconds, ours = time_simtune(embeddings, groups, spec)
        times["simtune"].append(seconds)
        simtune_rss = simtune_rss or peak_rss_mb()
        if not spec["skip_pml"]:
            seconds, theirs = time_pml(embeddings, groups)
            times["pml"].append(seconds)
        loads.append(os.getloadavg()[0])
        print(
            f"simtune {times['simtune'][-1]:.1f} s"
            + (f", PML {times['pml'][-1]:.1f} s" if times["pml"] else "")
            + f" (load {loads[-1]:.1f})",
            flush=True,
        )
    run = {
        "simtune": dict(
            seconds=statistics.median(times["simtune"]),
            all_seconds=times["simtune"],
            peak_rss_mb=simtune_rss,
            rss_after_data_mb=data_rss,
            metrics=ours,
        ),
        "load_average": loads,
    }
    if times["pml"]:
        run["pml_accuracy_calculator_faiss"] = dict(
            seconds=statistics.median(times["pml"]), all_seconds=times["pml"], peak_rss_mb=peak_rss_mb(), metrics=theirs
        )
        run["ratio_of_medians"] = run["simtune"]["seconds"] / run["pml_accuracy_calculator_faiss"]["seconds"]
        run["ratios"] = [a / b for a, b in zip(times["simtune"], times["pml"])]
        run["largest_metric_difference"] = max(abs(ours[name] - theirs[name]) for name in PML_NAMES)
    return run


def run_simtune(spec: dict) -> dict:
    import statistics

    from simtune.functional import ranking

    if spec["candidates"] == "torch":  # what runs where faiss is not installed
        ranking._faiss = None
    embeddings, groups = load(spec)
    loads = [os.getloadavg()[0]]
    times = []
    for _ in range(spec["repeats"]):
        seconds, metrics = time_simtune(embeddings, groups, spec)
        times.append(seconds)
    loads.append(os.getloadavg()[0])
    return dict(
        seconds=statistics.median(times),
        all_seconds=times,
        candidates=spec["candidates"],
        peak_rss_mb=peak_rss_mb(),
        metrics=metrics,
        load_average=loads,
        shape=list(embeddings.shape),
    )


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
    parser.add_argument("--max-memory-mb", type=float, default=256)
    parser.add_argument("--skip-pml", action="store_true", help="time simtune only")
    parser.add_argument("--cars-only", action="store_true", help="only the 8,100 x 1,280 timing")
    parser.add_argument(
        "--cars-run", help="also time the real unseen-class embeddings of this `simtune cars` run folder"
    )
    parser.add_argument("--scale-repeats", type=int, default=3, help="alternating calls of each tool at scale (median)")
    parser.add_argument(
        "--repeats", type=int, default=5, help="calls per 8,100 x 1,280 timing (the median is reported)"
    )
    args = parser.parse_args()
    if args.cars_run:
        check_cars_run(args.cars_run)

    import torch

    report = {"threads": torch.get_num_threads(), "cpus": os.cpu_count(), "load_average": os.getloadavg()}
    if not args.cars_only:
        scale = dict(
            n=args.n,
            dim=args.dim,
            classes=args.classes,
            seed=args.seed,
            random=False,
            distance="euclidean",
            metrics=SCALE_METRICS,
            max_memory_mb=args.max_memory_mb,
            progress=True,
            repeats=args.scale_repeats,
            skip_pml=args.skip_pml,
        )
        report["scale"] = {
            "data": {k: scale[k] for k in ("n", "dim", "classes", "seed")},
            **in_child(run_alternating, scale),
        }
    cars = dict(
        n=8_100,
        dim=1_280,
        classes=98,
        seed=args.seed,
        random=True,
        distance="cosine",
        metrics=FULL_METRICS,
        max_memory_mb=args.max_memory_mb,
        progress=False,
        repeats=args.repeats,
    )
    report["cars_size"] = {"data": {"n": 8_100, "dim": 1_280, "classes": 98, "random": True, "distance": "cosine"}}
    for candidates in CANDIDATES:
        report["cars_size"][f"simtune_{candidates}"] = in_child(run_simtune, {**cars, "candidates": candidates})
    if args.cars_run:
        report["cars_run"] = {"data": {"run_dir": args.cars_run, "distance": "cosine"}}
        for candidates in CANDIDATES:
            real = {**cars, "run_dir": args.cars_run, "random": False, "candidates": candidates}
            report["cars_run"][f"simtune_{candidates}"] = in_child(run_simtune, real)
    write_json(RESULTS, report)

    if "scale" in report:
        scale = report["scale"]
        print(
            f"\nN={args.n:,} d={args.dim} classes={args.classes} (exact; euclidean), alternating, "
            f"median of {args.scale_repeats} (load {scale['load_average'][0]:.1f} -> {scale['load_average'][-1]:.1f})"
        )
        print(
            f"{'implementation':34} {'seconds':>8} {'peak RSS MB':>12}  " + "  ".join(f"{m:>14}" for m in SCALE_METRICS)
        )
        for name in ("simtune", "pml_accuracy_calculator_faiss"):
            if name not in scale:
                continue
            run = scale[name]
            values = "  ".join(
                f"{run['metrics'][m]:>14.6f}" if m in run["metrics"] else f"{'-':>14}" for m in SCALE_METRICS
            )
            print(f"{name:34} {run['seconds']:>8.1f} {run['peak_rss_mb']:>12.0f}  {values}")
        if "ratio_of_medians" in scale:
            print(
                f"simtune / PML: {scale['ratio_of_medians']:.2f} (per pair: "
                f"{', '.join(f'{r:.2f}' for r in scale['ratios'])}); "
                f"largest metric difference {scale['largest_metric_difference']:.1e}"
            )
    for name, label in (
        ("cars_size", "8,100 x 1,280 random"),
        ("cars_run", f"{args.cars_run} unseen-class embeddings"),
    ):
        for candidates in CANDIDATES if name in report else ():
            run = report[name][f"simtune_{candidates}"]
            print(
                f"{label}, cosine, {len(FULL_METRICS)} metrics, candidates in {candidates}: median "
                f"{run['seconds']:.3f} s "
                f"of {len(run['all_seconds'])}, peak RSS {run['peak_rss_mb']:.0f} MB "
                f"(load {run['load_average'][0]:.1f} -> {run['load_average'][1]:.1f})"
            )
    print(f"metrics: {', '.join(FULL_METRICS)}")
    print(f"{report['threads']} torch threads, load average {report['load_average'][0]:.1f} at start")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
