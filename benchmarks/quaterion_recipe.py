"""Quaterion's cars tutorial recipe in simtune: does it learn as much as in Quaterion?

The recipe: frozen EfficientNet-Lite0 pooled features (1280-d) of the 98 training classes,
``SkipConnectionHead(1280, dropout=0.1)``, ``TripletLoss(mining="hard", margin=0.5)``, Adam at 3e-3,
batches of 2048 shuffled, 100 epochs, no validation and no model selection. It is trained twice,
with the textbook batch-hard loss and with Quaterion's (``scale="mean_negative"``), and each is
scored once on the 98 unseen classes (exact leave-one-out R-Precision, cosine), beside the frozen
features themselves (base). Nothing is chosen by looking at the unseen classes.

Features come from the images app's cache, read through simtune's public cache API: pass ``--cache``
the cache folder of a run trained with ``--tuned-blocks 0`` (only read, through
``simtune.train.load_encoded``; the default demo caches the maps two blocks earlier) and nothing is
encoded; otherwise the 16,185 photos are encoded once (minutes) into ``<run>/cache`` by
``encode_or_load``. Either way the entry is the app's: the Lite0 feature maps of every image
(``images_original``), from which the training-half and unseen rows are taken. The JSON is rewritten
after every form. The pooled features are the pretrained network's last convolution + batch norm +
ReLU6 + average pool over those maps (``EfficientNetLiteTopHead`` at its pretrained initialisation), as
``simtune cars evaluate`` computes its base row.

    python benchmarks/quaterion_recipe.py --data ../shared/datasets/stanford-cars-crop224 \
        --cache runs/lite0-last-conv/cache
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor
from torch.utils.data import Dataset

import simtune
from simtune.apps.cars.preset import CARS
from simtune.apps.images.data.dataset import TRAIN, UNSEEN, VALIDATION, ImageRecord, prepare_dataset
from simtune.apps.images.data.samples import ORIGINAL, ImageSamples
from simtune.apps.images.run.backbones import build_backbones
from simtune.apps.images.run.features import STORE_PREFIX
from simtune.atomic import write_json
from simtune.data import GroupSimilarityDataLoader, SimilarityGroupSample
from simtune.eval import Evaluator, GroupSampler, MeanAveragePrecisionAtR, PrecisionAtK, RetrievalRPrecision
from simtune.losses import TripletLoss
from simtune.models.encoders.base import Encoder
from simtune.models.heads import EfficientNetLiteTopHead, SkipConnectionHead
from simtune.train import CacheConfig, TrainableModel, encode_or_load, load_encoded

RESULTS = Path(__file__).parent / "results"
METRICS = [RetrievalRPrecision(), MeanAveragePrecisionAtR(), PrecisionAtK(1)]
FEATURES = 1280
FORMS = {"textbook_batch_hard": None, "quaterion_batch_hard": "mean_negative"}  # TripletLoss(scale=...)


class PooledFeatures(Encoder):
    """The frozen Lite0 pooled features, already computed: the encoder only passes them on."""

    @property
    def trainable(self) -> bool:
        return False

    @property
    def embedding_size(self) -> int:
        return FEATURES

    def forward(self, batch: Tensor) -> Tensor:
        return batch


class FeatureSamples(Dataset):
    def __init__(self, features: Tensor, groups: list[int]):
        self.features, self.groups = features, groups

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, index: int) -> SimilarityGroupSample:
        return SimilarityGroupSample(obj=self.features[index], group=self.groups[index])


class Recipe(TrainableModel):
    """The tutorial's TrainableModel, with only the imports (and the loss's scale) changed."""

    def __init__(self, lr: float, scale: str | None):
        self._lr = lr
        self._scale = scale
        super().__init__()

    def configure_encoders(self) -> Encoder:
        return PooledFeatures()

    def configure_head(self, input_embedding_size: int) -> SkipConnectionHead:
        return SkipConnectionHead(input_embedding_size, dropout=0.1)

    def configure_loss(self) -> TripletLoss:
        return TripletLoss(mining="hard", margin=0.5, scale=self._scale)

    def configure_optimizers(self) -> Any:
        return torch.optim.Adam(self.model.parameters(), self._lr)


def feature_maps(records: list[ImageRecord], run: Path, reuse: Path | None, wait: float, workers: int) -> Tensor:
    """Lite0 7x7x320 maps of every image, as the images app caches them: from ``reuse`` (read only; the
    demo may still be filling it, so it is polled for ``wait`` seconds), else from ``<run>/cache``
    (encoded and saved there when missing)."""
    encoders = build_backbones(["lite0"], feature_maps=True)
    samples = ImageSamples(records, views=(ORIGINAL,))
    name = STORE_PREFIX + ORIGINAL
    if reuse is not None:
        deadline = time.monotonic() + wait
        while True:
            cached = load_encoded(encoders, samples, reuse, name=name, device="cpu")
            if cached is not None:
                return cached.embeddings["lite0"][0]
            if time.monotonic() >= deadline:
                break
            time.sleep(30)
        print(f"no cache in {reuse} for these images; encoding them into {run / 'cache'}", flush=True)
    config = CacheConfig(cache_type="cpu", save_dir=run / "cache", batch_size=16, num_workers=workers)
    return encode_or_load(encoders, samples, config, name=name, device="cpu").embeddings["lite0"][0]


@torch.inference_mode()
def pooled(maps: Tensor, chunk: int = 512) -> Tensor:
    top = EfficientNetLiteTopHead(maps.shape[1], "lite0").eval()
    return torch.cat([top(block.float()) for block in maps.split(chunk)])


def train(
    features: Tensor, groups: list[int], scale: str | None, epochs: int, seed: int, root: Path
) -> tuple[Any, float]:
    pl.seed_everything(seed, verbose=False)
    model = Recipe(lr=3e-3, scale=scale)
    loader = GroupSimilarityDataLoader(FeatureSamples(features, groups), batch_size=2048, shuffle=True)
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        default_root_dir=root,
        log_every_n_steps=1,
    )
    start = time.perf_counter()
    simtune.fit(model, trainer, loader)
    return model.model.eval(), time.perf_counter() - start


@torch.inference_mode()
def score(embeddings: Tensor, groups: list[int]) -> dict[str, float]:
    evaluator = Evaluator(METRICS, GroupSampler(log_progress=False))
    task = evaluator.sampler.sample([SimilarityGroupSample(obj=i, group=g) for i, g in enumerate(groups)])
    return evaluator.score(task, embeddings).metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/datasets/stanford-cars-crop224")
    parser.add_argument("--run", default="runs/quaterion_recipe", help="Where the dataset index, split and cache go.")
    parser.add_argument(
        "--cache",
        type=Path,
        help="A cars run cache (a --tuned-blocks 0 run) to read the Lite0 feature maps from; never written.",
    )
    parser.add_argument(
        "--wait", type=float, default=0, help="Seconds to wait for --cache to hold a split still being filled."
    )
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--losses", nargs="+", choices=sorted(FORMS), default=sorted(FORMS), help="Which batch-hard forms to train."
    )
    parser.add_argument("--output", type=Path, default=RESULTS / "quaterion_recipe.json")
    args = parser.parse_args()
    run = Path(args.run)
    dataset, split = prepare_dataset(args.data, run, workers=args.workers, preset=CARS)
    training_half = dataset.subset(TRAIN, VALIDATION)  # the tutorial's 98 classes: no validation, no selection
    class_map = {c: i for i, c in enumerate(sorted(split.train_classes + split.validation_classes))}
    subsets = {"train": training_half, "val": dataset.subset(UNSEEN)}
    groups = {
        "train": [class_map[r.class_index] for r in training_half],
        "val": [r.class_index for r in subsets["val"]],
    }
    start = time.perf_counter()
    maps = feature_maps(dataset.records, run, args.cache, args.wait, args.workers)
    train_features, unseen = (pooled(maps[[r.id for r in records]]) for records in subsets.values())
    del maps
    feature_seconds = time.perf_counter() - start
    results: dict[str, Any] = {"base": score(unseen, groups["val"])}
    seconds: dict[str, float] = {}
    for name in args.losses:
        model, seconds[name] = train(
            train_features, groups["train"], FORMS[name], args.epochs, args.seed, run / "trainer"
        )
        with torch.no_grad():
            results[name] = score(model.head(unseen), groups["val"])
        print(f"{name}: unseen R-Precision {results[name]['r_precision']:.4f} ({seconds[name]:.0f} s)", flush=True)
        write_json(args.output, report(args, groups, results, seconds, feature_seconds))  # after every form
    shutil.rmtree(run / "trainer", ignore_errors=True)
    print(f"base {results['base']['r_precision']:.4f}; written to {args.output}")


def report(
    args: argparse.Namespace,
    groups: dict[str, list[int]],
    results: dict[str, Any],
    seconds: dict[str, float],
    feature_seconds: float,
) -> dict[str, Any]:
    return {
        "command": "python benchmarks/quaterion_recipe.py "
        + " ".join(
            f"--{key} {' '.join(map(str, value)) if isinstance(value, list) else value}"
            for key, value in vars(args).items()
            if value is not None
        ),
        "recipe": {
            "features": "frozen EfficientNet-Lite0 pooled (1280-d), 98 training classes",
            "head": "SkipConnectionHead(1280, dropout=0.1)",
            "loss": 'TripletLoss(mining="hard", margin=0.5[, scale="mean_negative"])',
            "optimizer": "Adam(model.parameters(), 3e-3)",
            "batch_size": 2048,
            "shuffle": True,
            "epochs": args.epochs,
            "seed": args.seed,
        },
        "train_images": len(groups["train"]),
        "unseen_images": len(groups["val"]),
        "unseen": {name: {key: round(value, 4) for key, value in metrics.items()} for name, metrics in results.items()},
        "train_seconds": {name: round(value, 1) for name, value in seconds.items()},
        "feature_seconds": round(feature_seconds, 1),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": os.getloadavg(),
    }


if __name__ == "__main__":
    main()
