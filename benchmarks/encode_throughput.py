"""Images per second through the servable model's pieces: collate alone, and encode (collate + forward).

Measures EfficientNet-Lite0 + SkipConnectionHead on real cars images, on the CPU (or --device), and
writes benchmarks/results/encode_throughput.json.

    python benchmarks/encode_throughput.py --images 256 --batch-size 32 --num-workers 0
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from simtune.atomic import write_json
from simtune.models import SimilarityModel
from simtune.models.encoders import EfficientNetLiteEncoder
from simtune.models.heads import SkipConnectionHead

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/datasets/stanford-cars-crop224")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    paths = sorted(Path(args.data, "images").glob("*/*.jpg"))[: args.images]
    encoder = EfficientNetLiteEncoder("lite0")
    model = SimilarityModel(encoder, SkipConnectionHead(encoder.embedding_size)).to(args.device).eval()
    collate = model.get_collate_fn()

    start = time.perf_counter()
    for index in range(0, len(paths), args.batch_size):
        collate(paths[index : index + args.batch_size])
    collate_seconds = time.perf_counter() - start

    start = time.perf_counter()
    model.encode(paths, batch_size=args.batch_size, num_workers=args.num_workers, progress=True)
    encode_seconds = time.perf_counter() - start

    result = {
        "images": len(paths),
        "batch_size": args.batch_size,
        "num_workers": args.num_workers,
        "device": args.device,
        "torch_threads": torch.get_num_threads(),
        "collate_images_per_second": round(len(paths) / collate_seconds, 1),
        "encode_images_per_second": round(len(paths) / encode_seconds, 1),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS / "encode_throughput.json", result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
