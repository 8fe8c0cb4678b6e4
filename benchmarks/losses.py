"""Peak CPU memory of every group loss, forward + backward, at batch 512/1024/2048 and embedding 1280.

Each (loss, batch) runs in its own process so one measurement cannot reuse memory freed by another:
the peak resident set (Linux VmHWM, reset just before the step) minus the resident set just before
it is what the loss step itself added. For scale, one B x B float32 matrix is B^2 * 4 bytes (16 MiB
at 2048); a B x B x B one would be 32 GiB.

    .venv/bin/python benchmarks/losses.py [--batch-sizes 512 1024 2048] [--dim 1280]

Prints a table and writes benchmarks/results/losses.json (atomically).
"""

from __future__ import annotations

import argparse
import inspect
import json
import subprocess
import sys
import time
from pathlib import Path

from tqdm import tqdm

from simtune.atomic import write_json

RESULTS = Path(__file__).parent / "results" / "losses.json"
SAMPLES_PER_GROUP = 4  # a class-balanced batch: B / 4 groups of 4


def cases() -> dict[str, tuple[str, dict]]:
    """Every group loss simtune.losses exports (several mining modes where it has them)."""
    import simtune.losses as losses

    found = {}
    for name in sorted(losses.__all__):
        cls = getattr(losses, name)
        if not (inspect.isclass(cls) and issubclass(cls, losses.GroupLoss)) or inspect.isabstract(cls):
            continue
        if cls is losses.PytorchMetricLearningLoss:
            continue  # a wrapper: its memory is the wrapped loss's
        if cls is losses.TripletLoss:
            for mining in ("all", "hard", "semi_hard"):
                found[f"TripletLoss[{mining}]"] = (name, {"mining": mining})
        elif cls is losses.OnlineContrastiveLoss:
            for mining in ("all", "hard"):
                found[f"OnlineContrastiveLoss[{mining}]"] = (name, {"mining": mining})
        else:
            found[name] = (name, {})
    return found


def measure(class_name: str, kwargs: dict, batch_size: int, dim: int) -> dict:
    """Runs in the child process."""
    import torch

    import simtune.losses as losses

    torch.manual_seed(0)
    cls = getattr(losses, class_name)
    parameters = inspect.signature(cls).parameters
    if "num_groups" in parameters:
        kwargs = {**kwargs, "num_groups": batch_size // SAMPLES_PER_GROUP}
    if "embedding_size" in parameters:
        kwargs = {**kwargs, "embedding_size": dim}
    loss = cls(**kwargs)
    embeddings = torch.randn(batch_size, dim, requires_grad=True)
    groups = torch.arange(batch_size) % (batch_size // SAMPLES_PER_GROUP)
    loss(embeddings[:32], groups[:32]).backward()  # warm-up: one-time allocations are not the loss's
    embeddings.grad = None
    reset_peak = _reset_peak_rss()
    before = _status_kib("VmRSS")
    start = time.perf_counter()
    value = loss(embeddings, groups)
    value.backward()
    seconds = time.perf_counter() - start
    peak = _status_kib("VmHWM") if reset_peak else _max_rss_kib()
    return {
        "peak_mib": max(peak - before, 0) / 1024,
        "seconds": seconds,
        "finite": bool(torch.isfinite(value) and torch.isfinite(embeddings.grad).all()),
    }


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _max_rss_kib() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run_case(class_name: str, kwargs: dict, batch_size: int, dim: int) -> dict:
    command = [sys.executable, __file__, "--child", json.dumps([class_name, kwargs, batch_size, dim])]
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        return {
            "error": completed.stderr.strip().splitlines()[-1]
            if completed.stderr.strip()
            else f"exit {completed.returncode}"
        }
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(*json.loads(args.child))))
        return
    results = {}
    jobs = [(label, spec, size) for label, spec in cases().items() for size in args.batch_sizes]
    for label, (class_name, kwargs), size in tqdm(jobs, desc="losses x batch sizes"):
        results.setdefault(label, {})[str(size)] = run_case(class_name, kwargs, size, args.dim)
    header = f"{'loss (forward+backward, CPU)':34}" + "".join(
        f"{'B=' + str(s) + ' MiB':>14}{'s':>7}" for s in args.batch_sizes
    )
    print(header)
    for label, by_size in results.items():
        cells = []
        for size in args.batch_sizes:
            row = by_size[str(size)]
            cells.append(
                f"{'error':>14}{'':>7}" if "error" in row else f"{row['peak_mib']:>14.1f}{row['seconds']:>7.2f}"
            )
        print(f"{label:34}" + "".join(cells))
    for label, by_size in results.items():
        for size, row in by_size.items():
            if "error" in row:
                print(f"{label} B={size}: {row['error']}")
    bxb = {str(s): s * s * 4 / 2**20 for s in args.batch_sizes}
    print("one B x B float32 matrix, MiB: " + ", ".join(f"B={s}: {m:.0f}" for s, m in bxb.items()))
    write_json(
        RESULTS,
        {"dim": args.dim, "samples_per_group": SAMPLES_PER_GROUP, "bxb_float32_mib": bxb, "losses": results},
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
