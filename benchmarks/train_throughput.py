"""Training throughput: cache fill vs a bare inference loop, cached vs uncached epochs, cache RAM.

    .venv/bin/python benchmarks/train_throughput.py [--data DIR] [--fill-images 512] [--uncached-images 256]

1. Cache fill of EfficientNet-Lite0 over cars images (the real ``fill_cache``) vs a bare
   ``torch.inference_mode()`` loop over the same images through the same DataLoader, in the same run,
   alternated so machine load hits both alike. Target: fill >= 0.9x bare.
2. One training epoch over 8,000 cached 1280-d embeddings (batch 1024, batch-hard triplet, Lightning)
   vs a plain PyTorch loop over the same tensors (the floor), and vs the same epoch without a cache,
   where Lite0 encodes every image again: timed on ``--uncached-images`` images and scaled to 8,000
   (``--uncached-images 8000`` times it whole).
3. RAM of the cache for the cars train set: N x 1280 floats (float32 and float16), measured from the
   tensors a fill produces.

Prints a table and writes benchmarks/results/train_throughput.json.
"""

from __future__ import annotations

import argparse
import csv
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader

from simtune.atomic import write_json
from simtune.data import GroupSimilarityDataLoader, SimilarityGroupSample
from simtune.losses.triplet_loss import TripletLoss
from simtune.models.encoders import EfficientNetLiteEncoder, Encoder
from simtune.models.heads import SkipConnectionHead
from simtune.train import CacheConfig, TrainableModel, encode_or_load, fit

RESULTS = Path(__file__).parent / "results" / "train_throughput.json"
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "stanford-cars-crop224"
EPOCH_ITEMS, EMBEDDING_SIZE, BATCH = 8000, 1280, 1024


def cars_samples(data: Path, limit: int | None = None, split: str | None = None) -> list[SimilarityGroupSample]:
    with (data / "labels.csv").open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if split is None or r.get("original_split") == split]
    return [SimilarityGroupSample(str(data / r["filename"]), int(r["class_id"])) for r in rows[:limit]]


def bare_loop(encoder: Encoder, samples: list[SimilarityGroupSample], batch_size: int, workers: int) -> float:
    """images/s of the plain loop: same decode/resize collate, same workers, forward in inference mode."""
    collate = encoder.get_collate_fn()
    loader = DataLoader([s.obj for s in samples], batch_size=batch_size, num_workers=workers, collate_fn=collate)
    start = time.perf_counter()
    with torch.inference_mode():
        for images in loader:
            encoder(images)
    return len(samples) / (time.perf_counter() - start)


def cache_fill(encoder: Encoder, samples: list[SimilarityGroupSample], batch_size: int, workers: int) -> float:
    """Items per second through the public ``encode_or_load`` with nothing saved (its fingerprint included)."""
    config = CacheConfig(batch_size=batch_size, num_workers=workers)
    start = time.perf_counter()
    encode_or_load(encoder, samples, config, device="cpu", progress=False)
    return len(samples) / (time.perf_counter() - start)


class StoredFeatures(Encoder):
    """A frozen 'encoder' whose outputs are fixed random 1280-d vectors, one per object id: it fills a
    cache of the epoch benchmark's size in moments, through the real fill code."""

    def __init__(self, count: int = EPOCH_ITEMS, size: int = EMBEDDING_SIZE):
        super().__init__()
        self.register_buffer("features", torch.randn(count, size, generator=torch.Generator().manual_seed(0)))

    @property
    def trainable(self) -> bool:
        return False

    @property
    def embedding_size(self) -> int:
        return self.features.shape[1]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.features[ids]

    def get_config(self) -> dict[str, Any]:
        return {"count": self.features.shape[0], "size": self.features.shape[1]}


class TripletOnTop(TrainableModel):
    # Arguments, not modules, are stored before super().__init__() (which calls the configure hooks).
    def __init__(self, make_encoder: Callable[[], Encoder], cache: CacheConfig | None):
        self.make_encoder, self.cache = make_encoder, cache
        super().__init__()

    def configure_encoders(self) -> Encoder:
        return self.make_encoder()

    def configure_head(self, input_embedding_size: int) -> SkipConnectionHead:
        return SkipConnectionHead(input_embedding_size)

    def configure_loss(self) -> TripletLoss:
        return TripletLoss(mining="hard")

    def configure_caches(self) -> CacheConfig | None:
        return self.cache


class EpochTimer(pl.Callback):
    def on_train_epoch_start(self, trainer, pl_module):
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        self.seconds = time.perf_counter() - self.start


def epoch_seconds(model: TrainableModel, samples: list[SimilarityGroupSample], batch_size: int, workers: int) -> float:
    timer = EpochTimer()
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
        default_root_dir=tempfile.mkdtemp(),
    )
    loader = GroupSimilarityDataLoader(samples, batch_size=batch_size, shuffle=True, num_workers=workers)
    fit(model, trainer, loader)
    return timer.seconds


def bare_training_epoch(features: torch.Tensor, groups: torch.Tensor) -> float:
    """The floor for a cached epoch: the same head, loss and optimizer over in-memory tensors, no Lightning."""
    head, loss = SkipConnectionHead(features.shape[1]), TripletLoss(mining="hard")
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-3)
    start = time.perf_counter()
    for rows in torch.randperm(len(features)).split(BATCH):
        optimizer.zero_grad()
        loss(head(features[rows]), groups[rows]).backward()
        optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--fill-images", type=int, default=512)
    parser.add_argument("--uncached-images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="bare/fill alternations; the best of each counts")
    args = parser.parse_args()

    encoder = EfficientNetLiteEncoder("lite0")
    samples = cars_samples(args.data, args.fill_images)
    bare_loop(encoder, samples[: args.batch_size], args.batch_size, 0)  # warm-up: weights, allocator
    bare, filled = [], []
    for _ in range(args.rounds):
        bare.append(bare_loop(encoder, samples, args.batch_size, args.workers))
        filled.append(cache_fill(encoder, samples, args.batch_size, args.workers))
    fill_ratio = max(filled) / max(bare)

    ids = [SimilarityGroupSample(torch.tensor(i), i % 98) for i in range(EPOCH_ITEMS)]
    cached_model = TripletOnTop(StoredFeatures, CacheConfig())
    cached = epoch_seconds(cached_model, ids, BATCH, 0)
    floor = bare_training_epoch(StoredFeatures().features, torch.arange(EPOCH_ITEMS) % 98)
    uncached_samples = cars_samples(args.data, args.uncached_images)
    uncached_batch = min(BATCH, len(uncached_samples))
    uncached_part = epoch_seconds(
        TripletOnTop(EfficientNetLiteEncoder, None), uncached_samples, uncached_batch, args.workers
    )
    uncached = uncached_part * EPOCH_ITEMS / len(uncached_samples)

    train_count = len(cars_samples(args.data, split="train"))
    half_cache = encode_or_load(StoredFeatures(), ids, CacheConfig(dtype="float16"), device="cpu", progress=False)
    per_item = {  # bytes per item of the tensors a fill really holds: embeddings + targets
        "float32": cached_model.encoder_cache.get("train").nbytes() / EPOCH_ITEMS,
        "float16": half_cache.nbytes() / EPOCH_ITEMS,
    }
    result = {
        "machine": {
            "cpu_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "torch": torch.__version__,
        },
        "fill": {
            "images": len(samples),
            "batch_size": args.batch_size,
            "workers": args.workers,
            "bare_images_per_s": bare,
            "fill_images_per_s": filled,
            "fill_vs_bare": fill_ratio,
            "target": 0.9,
        },
        "epoch": {
            "items": EPOCH_ITEMS,
            "dim": EMBEDDING_SIZE,
            "batch": BATCH,
            "loss": "triplet batch-hard",
            "cached_s": cached,
            "bare_loop_over_tensors_s": floor,
            "uncached_s": uncached,
            "uncached_measured_on_images": len(uncached_samples),
            "speedup": uncached / cached,
        },
        "cache_ram": {
            "cars_train_images": train_count,
            "float32_mb": train_count * per_item["float32"] / 2**20,
            "float16_mb": train_count * per_item["float16"] / 2**20,
        },
    }
    print(
        f"cache fill  : {max(filled):7.1f} img/s   bare inference loop: {max(bare):7.1f} img/s   "
        f"ratio {fill_ratio:.2f} (target >= 0.9)   [{len(samples)} cars images, best of {args.rounds}]"
    )
    print(
        f"epoch       : cached {cached:.2f} s   (plain loop over the same tensors: {floor:.2f} s)   uncached "
        f"{uncached:.1f} s"
        f" (timed on {len(uncached_samples)} images, scaled to {EPOCH_ITEMS})   speedup {uncached / cached:.0f}x"
    )
    print(
        f"cache RAM   : {train_count} cars train images x {EMBEDDING_SIZE}-d: "
        f"{result['cache_ram']['float32_mb']:.1f} MB float32, {result['cache_ram']['float16_mb']:.1f} MB float16"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS, result)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
