"""Images per second through the servable model's pieces: collate alone, and encode (collate + forward);
with ``--fill``, the feature cache's fill rate (``encode_or_load``, what ``fit`` with a ``CacheConfig``
runs) under its default settings, beside the cars app's settings and serial decoding, back to back;
with ``--floor``, the frozen layers the cars app caches (Lite0 below its last two blocks) alone on
pre-decoded tensors, float32 and bfloat16, batch norms as separate layers and folded: what no pipeline beats.

Measures EfficientNet-Lite0 (+ SkipConnectionHead) on real cars images, on the CPU (or --device), and
writes benchmarks/results/encode_throughput.json (or encode_throughput_fill.json).

    python benchmarks/encode_throughput.py --images 256 --batch-size 32 --num-workers 0
    python benchmarks/encode_throughput.py --images 256 --batch-size 16 --precision auto
    python benchmarks/encode_throughput.py --fill --images 2000
    python benchmarks/encode_throughput.py --floor --batch-size 16
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from simtune.atomic import write_json
from simtune.data import SimilarityGroupSample
from simtune.encoding.precision import PRECISIONS, precision_name
from simtune.models import SimilarityModel
from simtune.models.encoders import EfficientNetLiteEncoder
from simtune.models.heads import SkipConnectionHead
from simtune.train import CacheConfig, encode_or_load

# name -> CacheConfig: what fit() uses by default, what the cars app passes, decoding in the main process.
FILL_SETTINGS = {
    "fit default: CacheConfig()": {},
    "cars app: batch 16, 2 workers, float16 rows, auto precision": {
        "batch_size": 16,
        "num_workers": 2,
        "dtype": "float16",
        "precision": "auto",
    },
    "batch 64, 2 workers": {"batch_size": 64, "num_workers": 2},
    "serial: batch 64, 0 workers": {"batch_size": 64, "num_workers": 0},
}

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/datasets/stanford-cars-crop224")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--precision", default="float32", choices=PRECISIONS, help="arithmetic of the encode (auto: see docs/cache.md)"
    )
    parser.add_argument("--fill", action="store_true", help="measure the feature cache's fill rate instead")
    parser.add_argument("--floor", action="store_true", help="measure the frozen layers on pre-decoded tensors")
    parser.add_argument("--seconds", type=float, default=5.0, help="--floor: seconds per measurement")
    args = parser.parse_args()
    if args.floor:
        write(measure_floor(args.batch_size, args.seconds), "encode_throughput_floor.json")
        return

    paths = sorted(Path(args.data, "images").glob("*/*.jpg"))[: args.images]
    if args.fill:
        write(measure_fill(paths, args.device), "encode_throughput_fill.json")
        return
    encoder = EfficientNetLiteEncoder("lite0")
    model = SimilarityModel(encoder, SkipConnectionHead(encoder.embedding_size)).to(args.device).eval()
    collate = model.get_collate_fn()

    start = time.perf_counter()
    for index in range(0, len(paths), args.batch_size):
        collate(paths[index : index + args.batch_size])
    collate_seconds = time.perf_counter() - start

    start = time.perf_counter()
    model.encode(
        paths, batch_size=args.batch_size, num_workers=args.num_workers, progress=True, precision=args.precision
    )
    encode_seconds = time.perf_counter() - start

    result = {
        "images": len(paths),
        "batch_size": args.batch_size,
        "num_workers": args.num_workers,
        "device": args.device,
        "precision": precision_name(args.device, args.precision),
        "torch_threads": torch.get_num_threads(),
        "collate_images_per_second": round(len(paths) / collate_seconds, 1),
        "encode_images_per_second": round(len(paths) / encode_seconds, 1),
    }
    write(result, "encode_throughput.json")


def measure_fill(paths: list[Path], device: str) -> dict:
    """Every setting fills the same images from scratch (nothing saved), one after the other."""
    samples = [SimilarityGroupSample(str(path), index) for index, path in enumerate(paths)]
    encoder = EfficientNetLiteEncoder("lite0")
    rates = {}
    for name, settings in FILL_SETTINGS.items():
        config = CacheConfig(**settings)
        start = time.perf_counter()
        encode_or_load(encoder, samples, config, device=device)
        rates[name] = {
            "batch_size": config.batch_size,
            "num_workers": config.workers_for(-(-len(samples) // config.batch_size)),
            "precision": precision_name(device, config.precision),
            "dtype": config.dtype,
            "images_per_second": round(len(samples) / (time.perf_counter() - start), 1),
        }
    return {"images": len(samples), "device": device, "torch_threads": torch.get_num_threads(), "fill": rates}


def measure_floor(batch_size: int, seconds: float) -> dict:
    """Images per second of the cached frozen layers on one random pre-decoded batch, in inference mode, each
    arithmetic with the batch norms as separate layers (the training path) and folded (what encoding runs)."""
    encoder = EfficientNetLiteEncoder("lite0", output="blocks", tuned_blocks=2).eval()
    images = torch.rand(batch_size, 3, 224, 224).mul(2).sub(1).contiguous(memory_format=torch.channels_last)
    passes = {
        "batch norms separate": lambda: encoder._blocks(encoder.backbone, images),
        "batch norms folded": lambda: encoder(images),
    }
    rates = {}
    for precision in ("float32", "bfloat16"):
        for name, run_pass in passes.items():
            with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=precision == "bfloat16"):
                run_pass()  # warm-up: kernels chosen, the folded copy built
                start, done = time.perf_counter(), 0
                while time.perf_counter() - start < seconds:
                    run_pass()
                    done += batch_size
            rates[f"{precision}, {name}"] = round(done / (time.perf_counter() - start), 1)
            print(f"{precision}, {name}: {rates[f'{precision}, {name}']} img/s", flush=True)
    return {"batch_size": batch_size, "torch_threads": torch.get_num_threads(), "images_per_second": rates}


def write(result: dict, name: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS / name, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
