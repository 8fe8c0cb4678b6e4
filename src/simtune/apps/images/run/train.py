"""``simtune images train``: a trainable head on frozen backbones, trained on the run's training classes.

The default head, ``last-conv``, is EfficientNet-Lite's own top (its last ``tuned_blocks`` MBConv blocks and
final 1x1 convolution), started from its pretrained weights and fine-tuned: the backbone then stops below
those layers and caches their input maps instead of pooled vectors. The saved model serves it
flip-averaged (``flip_average``: each image and its mirror through the same weights, embeddings averaged);
training and validation see the images alone. The other heads reshape the pooled features of one or more
frozen backbones.
The frozen backbones run once over every image (see ``features``); every epoch, evaluation and rerun
reads their cached outputs. After each epoch the head is scored on the validation classes (R-Precision,
leave-one-out); training stops once that has not improved for ``patience`` epochs, and the best epoch's
weights are kept (not retrained on the validation classes: the kept model is the one that was measured).
The unseen classes are never looked at here. Lightning checkpoints each epoch
(``<run>/checkpoints/last.ckpt``), so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, TQDMProgressBar

import simtune
from simtune.apps.images.data.dataset import TRAIN, VALIDATION, ImageDataset, ImageRecord
from simtune.apps.images.data.samples import MIRROR, ORIGINAL, ImageSamples
from simtune.apps.images.run.backbones import build_backbones
from simtune.apps.images.run.features import BackboneFeatures, cache_config
from simtune.apps.images.run.snapshots import HeadSnapshots
from simtune.apps.images.run.split import ClassSplit
from simtune.apps.images.run.validation import MONITOR, ValidationRetrieval, head_scorer
from simtune.atomic import write_json
from simtune.data import ClassBalancedBatchSampler, GroupSimilarityDataLoader
from simtune.losses import GroupLoss, MultiSimilarityLoss, ProxyAnchorLoss, TripletLoss
from simtune.models import SimilarityModel
from simtune.models.encoders import Encoder
from simtune.models.encoders.efficientnet_lite import VARIANTS, tuned_block_keys
from simtune.models.heads import (
    EfficientNetLiteTopHead,
    EncoderHead,
    LinearHead,
    SkipConnectionHead,
    StackedProjectionHead,
)
from simtune.train import CacheConfig, TrainableModel

MODEL_DIR, CACHE_DIR, CHECKPOINT_DIR, SNAPSHOT_DIR = "model", "cache", "checkpoints", "epochs"
SETTINGS_FILE, HISTORY_FILE = "train_settings.json", "history.json"
SELECTION = "selection"  # the history entry saying which epoch was kept and why

LAST_CONV = "last-conv"
PRETRAINED_LR_FACTOR = 0.1
LAST_CONV_TUNED_BLOCKS = 2
# head -> (builder(input size, settings), default learning rate)
HEADS: dict[str, tuple[Callable[[int, TrainSettings], EncoderHead], float]] = {
    LAST_CONV: (
        lambda size, settings: EfficientNetLiteTopHead(
            size,
            settings.backbones[0],
            pooling="gem",
            residual=True,
            normalize=True,
            tuned_blocks=settings.tuned_blocks,
        ),
        1e-2,
    ),
    "skip": (lambda size, settings: SkipConnectionHead(size, normalize=True), 1e-2),
    "linear": (lambda size, settings: LinearHead(size, normalize=True), 1e-3),
    "mlp": (lambda size, settings: StackedProjectionHead(size, [2 * size, size], normalize=True), 1e-3),
}
# Proxy losses own one proxy per training class; validation and unseen classes are scored by retrieval
# alone, so any loss works with the validation protocol.
LOSSES: dict[str, Callable[[int, int], GroupLoss]] = {
    "multi-similarity": lambda size, classes: MultiSimilarityLoss(),
    "triplet": lambda size, classes: TripletLoss(margin=0.2, mining="semi_hard"),
    "proxy-anchor": lambda size, classes: ProxyAnchorLoss(classes, size),
}

# What runs saved before these settings existed trained with.
BEFORE_THESE_SETTINGS = {"tuned_blocks": 0, "min_batches_per_epoch": 0, "flip_average": False}


@dataclass
class TrainSettings:
    """Everything that defines a training run; saved to ``train_settings.json`` and compared on resume."""

    backbones: list[str] = field(default_factory=lambda: ["lite0"])
    head: str = LAST_CONV
    tuned_blocks: int | None = None  # last-conv: also tune the backbone's last N blocks (None: LAST_CONV_TUNED_BLOCKS)
    loss: str = "multi-similarity"
    epochs: int = 10  # at most: training stops earlier when validation R-Precision stalls for `patience` epochs
    patience: int = 3
    learning_rate: float | None = None  # None: the head's default (HEADS)
    weight_decay: float = 1e-4
    classes_per_batch: int = 64
    samples_per_class: int = 8
    min_batches_per_epoch: int = 12
    mirror: bool = False
    # last-conv: the served (and evaluated) embedding averages each image's and its mirror's (None: on)
    flip_average: bool | None = None
    seed: int = 0
    workers: int = 2

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"unknown head {self.head!r}; expected one of {sorted(HEADS)}")
        if self.head == LAST_CONV and not supports_last_conv(self.backbones):
            raise ValueError(
                f"head {LAST_CONV!r} fine-tunes the last convolution of exactly one EfficientNet-Lite backbone "
                f"({', '.join(sorted(VARIANTS))}), not {self.backbones}; choose another head (e.g. skip)"
            )
        last_conv = self.head == LAST_CONV
        if self.tuned_blocks is None:
            self.tuned_blocks = LAST_CONV_TUNED_BLOCKS if last_conv else 0
        if self.flip_average is None:
            self.flip_average = last_conv
        if self.tuned_blocks and not last_conv:
            raise ValueError(
                f"tuned_blocks={self.tuned_blocks} tunes backbone blocks inside the {LAST_CONV!r} head, not {self.head!r}"
            )
        if self.flip_average and not last_conv:
            raise ValueError(
                f"flip_average needs the {LAST_CONV!r} head (an EfficientNet-Lite that encodes mirrors), not {self.head!r}"
            )
        if self.tuned_blocks:
            tuned_block_keys(self.backbones[0], self.tuned_blocks)  # says how many blocks the variant allows
        if self.learning_rate is None:
            self.learning_rate = HEADS[self.head][1]
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; expected one of {sorted(LOSSES)}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.min_batches_per_epoch < 0:
            raise ValueError(f"min_batches_per_epoch must be >= 0, got {self.min_batches_per_epoch}")
        if self.patience < 1:
            raise ValueError(f"patience must be >= 1, got {self.patience}")

    @property
    def views(self) -> tuple[str, ...]:
        """The views training reads: the images, and their mirror images with ``mirror``."""
        return (ORIGINAL, MIRROR) if self.mirror else (ORIGINAL,)


class ImagesTrainable(TrainableModel):
    """Frozen backbones + the chosen head and loss; AdamW with a one-cycle schedule over all steps."""

    def __init__(self, settings: TrainSettings, num_train_classes: int, steps_per_epoch: int, cache_dir: Path):
        self.settings = settings
        self.num_train_classes = num_train_classes
        self.steps_per_epoch = steps_per_epoch
        self.cache_dir = cache_dir
        super().__init__()

    def configure_encoders(self) -> dict[str, Encoder]:
        return training_encoders(self.settings)

    def configure_head(self, input_embedding_size: int) -> EncoderHead:
        build, _ = HEADS[self.settings.head]
        return build(input_embedding_size, self.settings)

    def configure_loss(self) -> GroupLoss:
        build = LOSSES[self.settings.loss]
        return build(self.model.head.output_size, self.num_train_classes)

    def configure_optimizers(self) -> Any:
        rate = self.settings.learning_rate
        head = self.model.head
        pretrained = head.pretrained_parameters() if isinstance(head, EfficientNetLiteTopHead) else []
        slow = {id(p) for p in pretrained}
        groups = [{"params": [p for p in self.trainable_parameters() if id(p) not in slow], "lr": rate}]
        if pretrained:  # the pretrained convolution moves 10x slower than the new layers
            groups.append({"params": pretrained, "lr": rate * PRETRAINED_LR_FACTOR})
        optimizer = torch.optim.AdamW(groups, weight_decay=self.settings.weight_decay)
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=[group["lr"] for group in groups],
            total_steps=self.settings.epochs * self.steps_per_epoch,
            pct_start=0.1,
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def configure_caches(self) -> CacheConfig:
        return cache_config(self.cache_dir, self.settings.workers)


class EpochHistory(pl.Callback):
    """Per-epoch train loss and validation-class metrics; kept in checkpoints to survive a resume."""

    def __init__(self) -> None:
        self.history: dict[str, list[tuple[int, float]]] = {}

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for name, value in trainer.callback_metrics.items():
            self.history.setdefault(name, []).append((trainer.current_epoch + 1, float(value)))

    def state_dict(self) -> dict[str, Any]:
        return {"history": json.dumps(self.history)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = {k: [tuple(p) for p in v] for k, v in json.loads(state_dict["history"]).items()}


def training_encoders(settings: TrainSettings) -> dict[str, Encoder]:
    """The frozen backbones ``settings`` train on (stopping below the last-conv head's layers)."""
    feature_maps = settings.head == LAST_CONV
    return build_backbones(settings.backbones, feature_maps=feature_maps, tuned_blocks=settings.tuned_blocks)


def supports_last_conv(backbones: list[str]) -> bool:
    return len(backbones) == 1 and backbones[0] in VARIANTS


def load_settings(run_dir: Path) -> TrainSettings:
    path = run_dir / SETTINGS_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: train the run first (`simtune images train --data PATH --run {run_dir}`)"
        )
    return TrainSettings(**(BEFORE_THESE_SETTINGS | json.loads(path.read_text())))


def is_trained(run_dir: Path, settings: TrainSettings) -> bool:
    """The servable model exists and was trained with exactly these settings."""
    return (
        (run_dir / MODEL_DIR / "config.json").is_file()
        and (run_dir / SETTINGS_FILE).is_file()
        and (load_settings(run_dir) == settings)
    )


def batch_classes(groups: list[int], classes_per_batch: int) -> int:
    """``classes_per_batch``, capped at the training classes that can be drawn (two or more samples each)."""
    usable = sum(1 for count in Counter(groups).values() if count >= 2)
    if usable < 2:
        raise ValueError(
            f"only {usable} of the {len(set(groups))} training classes have two or more images; training needs at "
            "least 2 such classes (each batch needs positives and negatives): add images, or try another --split-seed"
        )
    return min(classes_per_batch, usable)


def training_batches(groups: list[int], settings: TrainSettings) -> ClassBalancedBatchSampler:
    """P x K batches; an epoch draws each image about once, but never fewer than ``min_batches_per_epoch``
    batches, so a small collection still gets enough steps between validations."""
    classes = batch_classes(groups, settings.classes_per_batch)
    sampler = ClassBalancedBatchSampler(groups, classes, settings.samples_per_class, seed=settings.seed)
    if len(sampler) >= settings.min_batches_per_epoch:
        return sampler
    return ClassBalancedBatchSampler(
        groups,
        classes,
        settings.samples_per_class,
        batches_per_epoch=settings.min_batches_per_epoch,
        seed=settings.seed,
    )


def run_features(
    run_dir: Path,
    encoders: dict[str, Encoder],
    dataset: ImageDataset,
    settings: TrainSettings,
    cache_dir: Path | None = None,
) -> BackboneFeatures:
    """The run's cached backbone outputs for every image (``cache_dir``, by default ``RUN/cache``), encoded on
    first use, in every view training, evaluation and indexing read (mirror images too when serving
    flip-averaged)."""
    views = settings.views + ((MIRROR,) if settings.flip_average and MIRROR not in settings.views else ())
    cache_dir = Path(cache_dir) if cache_dir else Path(run_dir) / CACHE_DIR
    return BackboneFeatures(encoders, dataset.records, cache_dir, views, settings.workers).prepare()


def keep_best_epoch(trainable: ImagesTrainable, checkpoint: ModelCheckpoint) -> tuple[int, float]:
    """Load the head weights of the best validation epoch (``checkpoint``'s best) into ``trainable``;
    returns (that epoch, its validation R-Precision)."""
    state = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=True)
    prefix = "_model.head."
    trainable.model.head.load_state_dict(
        {k[len(prefix) :]: v for k, v in state["state_dict"].items() if k.startswith(prefix)}
    )
    return int(state["epoch"]) + 1, float(checkpoint.best_model_score)


def check_validation(records: list[ImageRecord]) -> None:
    """Validation needs a class with two images (a query and something to find)."""
    if not any(count >= 2 for count in Counter(r.class_index for r in records).values()):
        raise ValueError(
            f"the validation classes hold {len(records)} readable images and none has two: nothing to validate on; "
            "add images, or try another --split-seed"
        )


def train_run(
    run_dir: Path,
    dataset: ImageDataset,
    split: ClassSplit,
    settings: TrainSettings,
    progress: bool = True,
    features: BackboneFeatures | None = None,
) -> Path:
    """Train (or resume, or skip when already trained with these settings); returns the servable model folder.

    ``features``: backbone outputs already loaded for (a superset of) ``dataset``'s images, e.g. shared by
    several runs on the same collection; by default the run's own cache."""
    run_dir = Path(run_dir)
    if is_trained(run_dir, settings):
        return run_dir / MODEL_DIR
    checkpoints = run_dir / CHECKPOINT_DIR
    if (run_dir / SETTINGS_FILE).is_file() and load_settings(run_dir) != settings:
        shutil.rmtree(checkpoints, ignore_errors=True)  # other settings: start over (the features stay valid)
        shutil.rmtree(run_dir / SNAPSHOT_DIR, ignore_errors=True)
    write_json(run_dir / SETTINGS_FILE, asdict(settings))
    pl.seed_everything(settings.seed, verbose=False)
    class_map = {c: i for i, c in enumerate(split.train_classes)}
    train = ImageSamples(dataset.subset(TRAIN), views=settings.views, class_map=class_map)
    sampler = training_batches(train.groups, settings)
    train_loader = GroupSimilarityDataLoader(train, batch_sampler=sampler)
    trainable = ImagesTrainable(settings, len(class_map), len(sampler), run_dir / CACHE_DIR)
    features = features or run_features(run_dir, dict(trainable.model.encoders.items()), dataset, settings)
    features.write_split_cache("train", train, run_dir / CACHE_DIR)
    validation = dataset.subset(VALIDATION)
    check_validation(validation)
    score = head_scorer(features.backbone_outputs(validation), torch.tensor([r.class_index for r in validation]))
    del features
    history = EpochHistory()
    best = ModelCheckpoint(
        dirpath=checkpoints,
        filename="best",
        monitor=MONITOR,
        mode="max",
        save_top_k=1,
        save_last=True,
        save_on_train_epoch_end=True,
    )
    trainer = pl.Trainer(
        max_epochs=settings.epochs,
        accelerator="auto",
        devices=1,
        logger=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        enable_progress_bar=progress,
        log_every_n_steps=max(1, len(sampler)),
        callbacks=[
            ValidationRetrieval(score),
            history,
            HeadSnapshots(run_dir / SNAPSHOT_DIR),
            EarlyStopping(MONITOR, mode="max", patience=settings.patience, check_on_train_epoch_end=True),
            best,
        ]
        + ([TQDMProgressBar()] if progress else []),
    )
    last = checkpoints / "last.ckpt"
    with warnings.catch_warnings():
        # Validation runs in ValidationRetrieval, on cached features, not in Lightning's validation loop.
        warnings.filterwarnings("ignore", ".*`validation_step` but have no `val_dataloader`.*")
        simtune.fit(trainable, trainer, train_loader, ckpt_path=last if last.is_file() else None)
    epoch, value = keep_best_epoch(trainable, best)
    stopped = len(history.history.get("train_loss", []))
    history.history[SELECTION] = {
        "monitor": MONITOR,
        "kept_epoch": epoch,
        "kept_value": value,
        "epochs_run": stopped,
        "max_epochs": settings.epochs,
        "patience": settings.patience,
        "reason": (
            f"the best {MONITOR} ({value:.4f}) over {len(validation)} images of "
            f"{len(split.validation_classes)} validation classes; "
            + (
                f"no better epoch in the {stopped - epoch} after it, so training stopped after epoch {stopped}"
                if stopped < settings.epochs
                else f"training ran all {settings.epochs} epochs"
            )
        ),
    }
    write_json(run_dir / HISTORY_FILE, history.history)
    servable_model(trainable.model, settings).save(run_dir / MODEL_DIR)
    return run_dir / MODEL_DIR


def servable_model(model: SimilarityModel, settings: TrainSettings) -> SimilarityModel:
    """The trained model as served: with ``flip_average``, the same weights embedding each image and its
    mirror and averaging the two (the last-conv head; other heads embed the image alone)."""
    if not settings.flip_average:
        return model
    encoders = {name: encoder.with_mirror(True) for name, encoder in model.encoders.items()}
    return SimilarityModel(encoders, model.head.with_views(2))
